import IOMMUModel
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// One vhost-user-blk device set up as QEMU 7.2 would for a guest: handshake, config read,
/// SET_FEATURES, one memfd of guest RAM, and the workload's rings started and enabled.
final class BenchConnection {
    let session: FrontEndSession
    let device: BlockDeviceInfo
    let features: VirtioFeatures
    let ram: GuestRAM
    let queues: [BenchQueue]
    /// Behind a vIOMMU: the IOVA of guest-physical 0 (IOVA = base + guest-physical), and the
    /// responder that answers MISSes during the run (on-demand mode).
    let iovaBase: UInt64?
    let missResponder: MissResponder?

    /// Where the IOVA window starts: above 4 GiB, so no IOVA equals a guest-physical address.
    static let iovaWindowStart: UInt64 = 1 << 32

    init(socketPath: String, workload: Workload, connectTimeoutMilliseconds: Int) throws(BenchError) {
        do throws(FrontEndError) {
            session = try FrontEndSession.connect(path: socketPath, timeoutMilliseconds: connectTimeoutMilliseconds)
        } catch {
            throw .protocolFailure(error)
        }
        var wanted: VirtioFeatures = [.version1, .blockSize, .readOnly, .flush, .multiQueue]
        if workload.eventIndex { wanted.insert(.eventIndex) }
        if workload.indirect { wanted.insert(.indirectDescriptors) }
        var required: VirtioFeatures = [.version1]
        var requiredProtocol: ProtocolFeatures = [.config]
        if workload.indirect { required.insert(.indirectDescriptors) }
        if workload.iommu != .off {
            required.insert(.accessPlatform)
            requiredProtocol.formUnion([.backendReq, .replyAck])
        }
        let config: [UInt8]
        do throws(FrontEndError) {
            let agreed = try session.negotiate(
                wanted: wanted, wantedProtocol: [.multiQueue, .replyAck, .config],
                requiring: required, requiringProtocol: requiredProtocol)
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
        var mapper: TwoStepMapper?
        if workload.iommu != .off {
            do throws(TwoStepMappingError) {
                var twoStep = try TwoStepMapper(window: Self.iovaWindowStart...(Self.iovaWindowStart + (1 << 40) - 1))
                let reservation = try twoStep.reserve(size: UInt64(ramSize))
                iovaBase = reservation.range.lowerBound
                mapper = twoStep
            } catch {
                throw .invalidWorkload("IOVA window: \(error)")
            }
        } else {
            iovaBase = nil
        }
        var made: [BenchQueue] = []
        for index in 0..<workload.queueCount {
            made.append(try BenchQueue(index: index, ram: ram, size: workload.queueSize, depth: workload.queueDepth,
                                       blockSize: workload.blockSize, indirect: workload.indirect,
                                       eventIndex: features.contains(.eventIndex), addressOffset: iovaBase ?? 0))
        }
        queues = made
        var channel: UnixSocket?
        if workload.iommu != .off {
            let pair: (UnixSocket, UnixSocket)
            do throws(SystemError) {
                pair = try UnixSocket.pair()
            } catch {
                throw .system(error)
            }
            channel = pair.0
            do throws(FrontEndError) {
                try session.send(.setBackendReqFd, descriptors: [pair.1.rawValue], needReply: true)
            } catch {
                throw .protocolFailure(error)
            }
        }
        do throws(FrontEndError) {
            try session.setFeatures(features)
            var regions: [(region: MemoryRegionDescription, fd: Int32)] = []
            for region in ram.regionDescriptions {
                let description = try Self.describe(region)
                regions.append((description, region.descriptor.rawValue))
            }
            try session.setMemoryTable(regions)
        } catch {
            throw .protocolFailure(error)
        }
        if var mapper, let iovaBase {
            // Premapped: all of guest RAM in one UPDATE. On demand: the rings' pages only, as
            // QEMU maps them when it starts a ring; buffers come through MISS.
            if workload.iommu == .premapped {
                try Self.link(&mapper, iova: iovaBase, size: UInt64(ramSize), ram: ram, iovaBase: iovaBase, session: session)
            } else {
                for queue in queues {
                    for part in [queue.descriptorTable, queue.availableRing, queue.usedRing] {
                        let first = part.guestPhysicalAddress.rawValue & ~4095
                        let end = (part.guestPhysicalAddress.rawValue + UInt64(part.size) + 4095) & ~4095
                        try Self.link(&mapper, iova: iovaBase + first, size: end - first, ram: ram, iovaBase: iovaBase,
                                      session: session)
                    }
                }
            }
            if let channel {
                missResponder = MissResponder(session: session, channel: channel, ram: ram, mapper: mapper, iovaBase: iovaBase)
            } else {
                missResponder = nil
            }
        } else {
            missResponder = nil
        }
        do throws(FrontEndError) {
            for queue in queues {
                func address(_ part: GuestRAM.Allocation) -> UInt64 {
                    iovaBase.map { $0 + part.guestPhysicalAddress.rawValue } ?? part.frontEndVirtualAddress.rawValue
                }
                try session.configureRing(
                    index: UInt32(queue.index), size: UInt16(queue.size),
                    descriptorTable: address(queue.descriptorTable), availableRing: address(queue.availableRing),
                    usedRing: address(queue.usedRing), kick: queue.kick, call: queue.call, error: nil)
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

    /// Links `size` bytes at `iova` (guest-physical `iova - iovaBase`) read-write and sends the
    /// UPDATEs.
    private static func link(_ mapper: inout TwoStepMapper, iova: UInt64, size: UInt64, ram: GuestRAM, iovaBase: UInt64,
                             session: FrontEndSession) throws(BenchError) {
        guard let user = ram.frontEndVirtualAddress(of: GuestPhysicalAddress(iova - iovaBase)) else {
            throw .invalidWorkload("IOVA 0x\(String(iova, radix: 16)) is outside guest RAM")
        }
        let messages: [IOTLBMessageToSend]
        do throws(TwoStepMappingError) {
            messages = try mapper.link(iova: iova, size: size, userAddress: user.rawValue, permission: .readWrite)
        } catch {
            throw .invalidWorkload("linking IOVA 0x\(String(iova, radix: 16)): \(error)")
        }
        try IOTLBSender.send(messages, on: session)
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
