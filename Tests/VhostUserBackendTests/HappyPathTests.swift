import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

extension BackEndIntegration {
    @Suite("QEMU 7.2's sequence end to end")
    struct HappyPathTests {
        @Test("negotiates, reads the config, serves every request type and restarts rings where they stopped",
              arguments: [QEMUSequence.MemoryTableStyle.setMemTable, .addMemReg])
        func servesQEMUSequence(memory: QEMUSequence.MemoryTableStyle) throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()

            // Connect: negotiation and the 57-byte GET_CONFIG of QEMU's defaults.
            let negotiated = try QEMUSequence.connect(session)
            #expect(negotiated.protocolFeatures == [.multiQueue, .logShmfd, .replyAck, .backendReq, .config, .inflightShmfd,
                                                    .configureMemSlots, .resetDevice, .status])
            #expect(negotiated.features.isSuperset(of: [.version1, .flush, .discard, .writeZeroes, .blockSize, .segMax]))
            #expect(session.queueCount == UInt64(InProcessBackEnd.queueCount))
            let config = negotiated.config
            #expect(config.count == 57)
            #expect(loadLittleEndian(config, at: 0, as: UInt64.self) == UInt64(InProcessBackEnd.imageSize / 512))
            #expect(loadLittleEndian(config, at: 12, as: UInt32.self) == UInt32(InProcessBackEnd.queueSize - 2))
            #expect(loadLittleEndian(config, at: 20, as: UInt32.self) == 512)
            #expect(loadLittleEndian(config, at: 34, as: UInt16.self) == UInt16(InProcessBackEnd.queueCount))

            // Start: features, notifiers, memory, both rings, enable.
            let guest = try BlockGuest(eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features, memory: memory)
            var served = [0, 0]

            // A write on queue 0, read back on queue 1, and the bytes on the host.
            let data = pattern(count: 8192, seed: 1)
            #expect(try guest.write(queue: 0, sector: 100, data) == BlockGuest.statusOK)
            let readBack = try guest.perform(queue: 1, .read, sector: 100, inLength: data.count)
            served[0] += 1; served[1] += 1
            #expect(readBack.status == BlockGuest.statusOK)
            #expect(readBack.usedLength == UInt32(data.count + 1))
            #expect(readBack.data == data)
            #expect(try backEnd.imageBytes(offset: 100 * 512, count: data.count) == data)

            // Buffers straddling the boundary between the two memfd regions, both directions.
            let boundary = GuestPhysicalAddress(UInt64(8 << 20) - 2048)
            let straddling = pattern(count: 4096, seed: 2)
            let write = try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: 300,
                                         outData: straddling, outAddress: boundary)
            #expect(try guest.complete([write])[0].status == BlockGuest.statusOK)
            let read = try guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 300,
                                        inLength: 4096, inAddress: boundary)
            #expect(try guest.complete([read])[0].data == straddling)
            served[0] += 2
            #expect(try backEnd.imageBytes(offset: 300 * 512, count: 4096) == straddling)

            // FLUSH.
            #expect(try guest.perform(queue: 1, .flush).status == BlockGuest.statusOK)
            served[1] += 1

            // GET_ID: the serial, NUL-padded to 20 bytes.
            let identifier = try guest.perform(queue: 0, .getIdentifier, inLength: 20)
            served[0] += 1
            #expect(identifier.status == BlockGuest.statusOK)
            #expect(identifier.usedLength == 21)
            #expect(identifier.data == Array(InProcessBackEnd.serial.utf8) + [UInt8](repeating: 0, count: 20 - InProcessBackEnd.serial.utf8.count))

            // DISCARD and WRITE_ZEROES (with and without unmap) read back as zeroes.
            let filler = pattern(count: 3 * 8192, seed: 3)
            #expect(try guest.write(queue: 1, sector: 2048, filler) == BlockGuest.statusOK)
            let discard = BlockGuest.segments([(sector: 2048, count: 16, unmap: false)])
            #expect(try guest.perform(queue: 1, .discard, outData: discard).status == BlockGuest.statusOK)
            let zeroes = BlockGuest.segments([(sector: 2064, count: 16, unmap: false), (sector: 2080, count: 16, unmap: true)])
            #expect(try guest.perform(queue: 1, .writeZeroes, outData: zeroes).status == BlockGuest.statusOK)
            let cleared = try guest.read(queue: 1, sector: 2048, count: filler.count)
            served[1] += 4
            #expect(cleared.status == BlockGuest.statusOK)
            #expect(cleared.data == [UInt8](repeating: 0, count: filler.count))
            #expect(try backEnd.imageBytes(offset: 2048 * 512, count: filler.count) == [UInt8](repeating: 0, count: filler.count))

            // The device called the driver.
            #expect(try guest.callsSignalled(queue: 0) > 0)
            #expect(try guest.callsSignalled(queue: 1) > 0)

            // Stop: GET_VRING_BASE answers exactly the requests each ring consumed.
            let bases = try QEMUSequence.stop(session, queueCount: 2)
            #expect(bases == served.map { UInt16($0) })

            // Restart at those indices (QEMU sends no memory change on restart) and continue.
            try QEMUSequence.start(session, guest: guest, features: negotiated.features,
                                   memory: memory == .setMemTable ? .setMemTable : nil, bases: bases)
            let more = pattern(count: 4096, seed: 4)
            #expect(try guest.write(queue: 1, sector: 7, more) == BlockGuest.statusOK)
            #expect(try guest.read(queue: 0, sector: 7, count: more.count) == (BlockGuest.statusOK, more))
            #expect(try guest.read(queue: 0, sector: 100, count: data.count).data == data)
            let restartedBases = try QEMUSequence.stop(session, queueCount: 2)
            #expect(restartedBases == [bases[0] + 2, bases[1] + 1])
            #expect(backEnd.logs.all.filter { $0.level >= .warning }.isEmpty,
                    "unexpected warnings: \(backEnd.logs.all.filter { $0.level >= .warning })")
        }
    }
}

func loadLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as type: T.Type) -> T {
    var value: T = 0
    for index in 0..<MemoryLayout<T>.size {
        value |= T(bytes[offset + index]) << (8 * index)
    }
    return value
}
