import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

extension BackEndIntegration {
    /// What front ends after QEMU 7.2 ask of a back end (docs/compatibility.md): rings of any
    /// size, SET_VRING_ENABLE waited for, STATUS, RESET_DEVICE on every device reset with a new
    /// inflight area after it, kicks that bring nothing, and silence once every ring is stopped.
    @Suite("Front ends after QEMU 7.2")
    struct NewerFrontEndTests {
        /// The device's bound when nobody lowers it, as the daemon starts by default.
        static let defaultBound = SplitRing.maximumQueueSize

        @Test("rings of any power-of-two size up to 32768 are served with the default bound", arguments: [4, 256, 1024, 32768])
        func ringsOfAnySizeAreServed(size: Int) throws {
            let backEnd = try InProcessBackEnd(queueSize: Self.defaultBound)
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            // seg_max stays within the smallest ring a front end sets by default.
            #expect(loadLittleEndian(negotiated.config, at: 12, as: UInt32.self) == 126)
            #expect(loadLittleEndian(negotiated.config, at: 8, as: UInt32.self) == 1 << 20, "size_max")
            #expect(negotiated.features.contains(.sizeMax))
            let guest = try BlockGuest(queueSize: size, eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features)
            // More requests than a small ring holds, so it wraps.
            for request in 0..<(min(size, 8) + 3) {
                let data = pattern(count: 1024, seed: UInt64(size + request))
                #expect(try guest.write(queue: 1, sector: UInt64(request * 2), data) == BlockGuest.statusOK)
                #expect(try guest.read(queue: 0, sector: UInt64(request * 2), count: data.count).data == data)
            }
            #expect(!backEnd.logs.all.contains { $0.message.contains("ring refused") })
        }

        @Test("a ring larger than the device accepts fails every request with IOERR and moves no data; another ring is served")
        func ringAboveTheBoundFailsItsRequests() throws {
            let backEnd = try InProcessBackEnd(queueSize: 128)
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            let large = try BlockGuest(queueSize: 256, eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: large, features: negotiated.features)
            let write = try large.perform(queue: 0, .write, sector: 4, outData: pattern(count: 4096, seed: 1))
            #expect(write.status == BlockGuest.statusIOError && write.usedLength == 1)
            let read = try large.perform(queue: 1, .read, sector: 4, inLength: 512)
            #expect(read.status == BlockGuest.statusIOError)
            #expect(try backEnd.imageBytes(offset: 4 * 512, count: 4096) == [UInt8](repeating: 0, count: 4096))
            #expect(backEnd.logs.all.contains { $0.message.contains("ring refused") })
            #expect(!large.errorSignalled(queue: 0, milliseconds: 0), "refused, not broken")
            // The front end sets rings the device accepts: served on the same connection.
            _ = try QEMUSequence.stop(session, queueCount: 2)
            let fitting = try BlockGuest(queueSize: 128, eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: fitting, features: negotiated.features, memory: .setMemTable)
            #expect(try fitting.write(queue: 0, sector: 4, pattern(count: 4096, seed: 2)) == BlockGuest.statusOK)
        }

        @Test("SET_VRING_ENABLE with NEED_REPLY is acknowledged, both ways (QEMU 8.2 waits for it)")
        func vringEnableIsAcknowledged() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd, enable: false)
            for value in [UInt32(1), 0, 1] {
                let reply = try started.session.send(.setVringEnable(VringState(index: 0, num: value)), needReply: true)
                #expect(reply == .ack(request: .setVringEnable, value: 0))
            }
            #expect(try started.guest.write(queue: 0, sector: 2, pattern(count: 512, seed: 3)) == BlockGuest.statusOK)
            let disabled = try started.session.send(.setVringEnable(VringState(index: 1, num: 0)), needReply: true)
            #expect(disabled == .ack(request: .setVringEnable, value: 0))
        }

        @Test("GET_STATUS answers what SET_STATUS set; SET_STATUS 0 before or after GET_VRING_BASE keeps the ring's position")
        func statusIsRecordedAndResetsNothing() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            let session = started.session
            #expect(session.protocolFeatures.contains(.status))
            // QEMU's vhost_user_add_status: read, or in the bits, write.
            for status: UInt8 in [0x08, 0x0b, 0x0f] {
                try session.send(.setStatus(status), needReply: true)
                #expect(try session.send(.getStatus) == .status(status))
            }
            #expect(try started.guest.write(sector: 1, pattern(count: 512, seed: 4)) == BlockGuest.statusOK)
            // QEMU 7.2's stop: SET_STATUS 0, then GET_VRING_BASE, which still answers the position.
            try session.send(.setStatus(0), needReply: true)
            #expect(try session.stopRing(index: 0) == 1)
            // 8.1 and later: GET_VRING_BASE first, then SET_STATUS 0.
            #expect(try session.stopRing(index: 1) == 0)
            try session.send(.setStatus(0), needReply: true)
            #expect(try session.send(.getStatus) == .status(0))
            try QEMUSequence.startRing(session, guest: started.guest, index: 0, base: 1)
            try session.enableRing(index: 0, true)
            #expect(try started.guest.write(sector: 2, pattern(count: 512, seed: 5)) == BlockGuest.statusOK)
            // RESET_DEVICE takes the status back to 0.
            try session.send(.setStatus(0x0f), needReply: true)
            try session.resetDevice()
            #expect(try session.send(.getStatus) == .status(0))
        }

        @Test("kicks that bring no new request complete nothing, notify nothing and break nothing")
        func spuriousKicksAreHarmless() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            let guest = started.guest
            #expect(try guest.write(sector: 1, pattern(count: 512, seed: 6)) == BlockGuest.statusOK)
            let calls = try guest.callsSignalled(queue: 0)
            for _ in 0..<50 { try guest.kicks[0].signal() }
            // A request after the spurious kicks is served, and is the only new used element.
            #expect(try guest.write(sector: 2, pattern(count: 512, seed: 7)) == BlockGuest.statusOK)
            #expect(guest.queues[0].usedIndex == 2)
            #expect(try guest.callsSignalled(queue: 0) <= calls + 1)
            #expect(!guest.errorSignalled(queue: 0, milliseconds: 0))
            #expect(try started.session.stopRing(index: 0) == 2)
        }

        @Test("once every ring is stopped the back end writes no guest memory and sends no notification")
        func stoppedRingsAreSilent() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            let guest = started.guest
            #expect(try guest.write(queue: 0, sector: 1, pattern(count: 512, seed: 8)) == BlockGuest.statusOK)
            #expect(try QEMUSequence.stop(started.session, queueCount: 2) == [1, 0])
            let calls = (try guest.callsSignalled(queue: 0), try guest.callsSignalled(queue: 1))
            let used = guest.queues.map { $0.usedRing.pointer.load(fromByteOffset: 0, as: UInt64.self) }
            let pending = try (0..<2).map { queue in
                try guest.submit(queue: queue, type: BlockGuest.RequestType.write.rawValue, sector: 40,
                                 outData: pattern(count: 512, seed: 9))
            }
            for _ in 0..<10 { for kick in guest.kicks { try kick.signal() } }
            // Each worker, woken by a command, takes a whole turn: a kick it still watched would
            // have been taken and the ring served in it.
            for queue in 0..<2 {
                #expect(try WorkerThreads.turn(queue: queue, session: started.session, call: guest.calls[queue]))
                #expect(waitReadable(guest.kicks[queue].rawValue, milliseconds: 0), "queue \(queue)'s kick must stay untaken")
            }
            #expect(guest.queues.map { $0.usedRing.pointer.load(fromByteOffset: 0, as: UInt64.self) } == used)
            #expect(try guest.callsSignalled(queue: 0) == calls.0 && guest.callsSignalled(queue: 1) == calls.1)
            #expect(try backEnd.imageBytes(offset: 40 * 512, count: 512) == [UInt8](repeating: 0, count: 512))
            // Started again where they stopped, the rings serve what waited, once.
            for queue in 0..<2 {
                try QEMUSequence.startRing(started.session, guest: guest, index: queue, base: queue == 0 ? 1 : 0)
                try started.session.enableRing(index: UInt32(queue), true)
                #expect(try guest.complete([pending[queue]])[0].status == BlockGuest.statusOK)
            }
            #expect(try QEMUSequence.stop(started.session, queueCount: 2) == [2, 1])
        }
    }
}
