import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

/// One vhost-user-blk device set up as QEMU 7.2 would for a guest: handshake, config read,
/// SET_FEATURES, one memfd of guest RAM, and the workload's rings started and enabled.
final class BenchConnection {
    let session: FrontEndSession
    let device: BlockDeviceInfo
    let features: VirtioFeatures
    let ram: GuestRAM
    let queues: [BenchQueue]

    init(socketPath: String, workload: Workload, connectTimeoutMilliseconds: Int) throws(BenchError) {
        do throws(FrontEndError) {
            session = try FrontEndSession.connect(path: socketPath, timeoutMilliseconds: connectTimeoutMilliseconds)
        } catch {
            throw .protocolFailure(error)
        }
        var wanted: VirtioFeatures = [.version1, .blockSize, .readOnly, .flush, .multiQueue]
        if workload.eventIndex { wanted.insert(.eventIndex) }
        if workload.indirect { wanted.insert(.indirectDescriptors) }
        let config: [UInt8]
        do throws(FrontEndError) {
            let agreed = try session.negotiate(
                wanted: wanted, wantedProtocol: [.multiQueue, .replyAck, .config],
                requiring: workload.indirect ? [.version1, .indirectDescriptors] : [.version1],
                requiringProtocol: [.config])
            features = agreed.features
            config = try session.readConfig(offset: 0, size: 36)
        } catch {
            throw .protocolFailure(error)
        }
        device = try BlockDeviceInfo(config: config, readOnly: features.contains(.readOnly),
                                     hasBlockSize: features.contains(.blockSize),
                                     hasMultiQueue: features.contains(.multiQueue))
        try Self.check(device, for: workload, protocolQueues: session.queueCount)

        let perQueue = BenchQueue.memoryNeeded(size: workload.queueSize, depth: workload.queueDepth,
                                               blockSize: workload.blockSize, indirect: workload.indirect)
        let ramSize = (perQueue * workload.queueCount + 0xFFFFF) & ~0xFFFFF
        do throws(GuestDriverError) {
            ram = try GuestRAM(size: ramSize)
        } catch {
            throw .guestSetup(error)
        }
        var made: [BenchQueue] = []
        for index in 0..<workload.queueCount {
            made.append(try BenchQueue(index: index, ram: ram, size: workload.queueSize, depth: workload.queueDepth,
                                       blockSize: workload.blockSize, indirect: workload.indirect,
                                       eventIndex: features.contains(.eventIndex)))
        }
        queues = made
        do throws(FrontEndError) {
            try session.setFeatures(features)
            var regions: [(region: MemoryRegionDescription, fd: Int32)] = []
            for region in ram.regionDescriptions {
                let description = try Self.describe(region)
                regions.append((description, region.descriptor.rawValue))
            }
            try session.setMemoryTable(regions)
            for queue in queues {
                try session.configureRing(
                    index: UInt32(queue.index), size: UInt16(queue.size),
                    descriptorTable: queue.descriptorTable.frontEndVirtualAddress.rawValue,
                    availableRing: queue.availableRing.frontEndVirtualAddress.rawValue,
                    usedRing: queue.usedRing.frontEndVirtualAddress.rawValue,
                    kick: queue.kick, call: queue.call, error: nil)
                if session.offeredFeatures.contains(.protocolFeatures) {
                    try session.enableRing(index: UInt32(queue.index), true)
                }
            }
        } catch {
            throw .protocolFailure(error)
        }
    }

    /// Stops every ring (GET_VRING_BASE), as QEMU does when the guest stops the device, so
    /// the back end is left idle and ready for the next front end.
    func stop() throws(BenchError) {
        do throws(FrontEndError) {
            for queue in queues {
                if session.offeredFeatures.contains(.protocolFeatures) {
                    try session.enableRing(index: UInt32(queue.index), false)
                }
                _ = try session.stopRing(index: UInt32(queue.index))
            }
        } catch {
            throw .protocolFailure(error)
        }
    }

    private static func describe(_ region: GuestRAM.RegionDescription) throws(FrontEndError) -> MemoryRegionDescription {
        do throws(ProtocolError) {
            return try MemoryRegionDescription(
                guestPhysicalAddress: region.guestPhysicalStart.rawValue, size: region.size,
                userAddress: region.frontEndVirtualStart.rawValue, mmapOffset: region.mmapOffset)
        } catch {
            throw .invalidMessage(error)
        }
    }

    private static func check(_ device: BlockDeviceInfo, for workload: Workload, protocolQueues: UInt64) throws(BenchError) {
        let queues = min(device.queueCount, Int(clamping: protocolQueues))
        guard workload.queueCount <= queues else {
            throw .deviceUnsuitable("\(workload.queueCount) queues asked, the device has \(queues)")
        }
        guard workload.blockSize % Int(max(device.logicalBlockSize, 1)) == 0 else {
            throw .deviceUnsuitable("block size \(workload.blockSize) is not a multiple of the device's \(device.logicalBlockSize)")
        }
        let span = workload.span ?? device.capacityBytes
        guard span >= UInt64(workload.blockSize) * UInt64(workload.queueCount), span <= device.capacityBytes else {
            throw .deviceUnsuitable("span \(span) does not fit the device's \(device.capacityBytes) bytes")
        }
        let writes = workload.verify ? !workload.verifyOnly : workload.mix.readPercent < 100
        if writes, device.readOnly { throw .deviceUnsuitable("the device is read-only and the workload writes") }
    }
}
