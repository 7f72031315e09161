import VhostUserProtocol
import VirtioSpec

/// Random generation of valid messages for round-trip and fuzz tests.
extension SplitMix64 {
    /// True with probability 1/`n`.
    mutating func oneIn(_ n: UInt64) -> Bool {
        next(upperBound: n) == 0
    }

    /// A u64 biased toward the edge values that break range arithmetic.
    mutating func edgyU64() -> UInt64 {
        if oneIn(4) {
            let edges: [UInt64] = [0, 1, 0xFFF, 0x1000, 0xFFFF_FFFF, 1 << 63, .max - 1, .max]
            return edges[below(edges.count)]
        }
        return next()
    }

    /// A uniformly random Int in 0..<n.
    mutating func below(_ n: Int) -> Int {
        Int(truncatingIfNeeded: next(upperBound: UInt64(n)))
    }

    mutating func u32(below bound: UInt32) -> UInt32 {
        UInt32(truncatingIfNeeded: next(upperBound: UInt64(bound)))
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    /// A region or range size: often small, sometimes large.
    mutating func size() -> UInt64 {
        1 + next(upperBound: oneIn(4) ? UInt64(0x1000) : UInt64(1) << 36)
    }

    /// A start such that `start + size` does not exceed `UInt64.max`, sometimes exactly there.
    mutating func start(forSize size: UInt64) -> UInt64 {
        let highest = UInt64.max - size
        guard highest > 0, !oneIn(8) else {
            return highest
        }
        return next(upperBound: highest) + (oneIn(2) ? 0 : 1)
    }

    /// Starts for ranges of the given sizes (same indices) that do not overlap each other:
    /// laid out in a random order with random gaps (sometimes none), the last one sometimes
    /// ending exactly at `UInt64.max`.
    mutating func disjointStarts(sizes: [UInt64]) -> [UInt64] {
        let order = Array(sizes.indices).shuffled(using: &self)
        var starts = [UInt64](repeating: 0, count: sizes.count)
        var cursor = next(upperBound: UInt64(1) << 40)
        for index in order {
            let gap = oneIn(4) ? 0 : next(upperBound: UInt64(1) << 32)
            starts[index] = cursor + gap
            cursor += gap + sizes[index]
        }
        if oneIn(4), let last = order.last {
            starts[last] = UInt64.max - sizes[last]
        }
        return starts
    }

    mutating func region() -> MemoryRegionDescription {
        let size = size()
        let gpa = start(forSize: size)
        let uva = start(forSize: size)
        let offset = start(forSize: size)
        return valid { () throws(ProtocolError) in
            try MemoryRegionDescription(guestPhysicalAddress: gpa, size: size, userAddress: uva, mmapOffset: offset)
        }
    }

    mutating func memoryTable(maximumCount: Int) -> MemoryTableDescription {
        let count = 1 + below(maximumCount)
        let sizes = (0..<count).map { _ in size() }
        let guestStarts = disjointStarts(sizes: sizes)
        let userStarts = disjointStarts(sizes: sizes)
        var regions: [MemoryRegionDescription] = []
        for index in 0..<count {
            let offset = start(forSize: sizes[index])
            regions.append(valid { () throws(ProtocolError) in
                try MemoryRegionDescription(
                    guestPhysicalAddress: guestStarts[index], size: sizes[index], userAddress: userStarts[index],
                    mmapOffset: offset)
            })
        }
        return valid { () throws(ProtocolError) in try MemoryTableDescription(regions: regions) }
    }

    mutating func vringFileIndex(queueCount: UInt32) -> VringFileIndex {
        let index = u32(below: min(queueCount, 256))
        let hasFd = oneIn(2)
        return valid { () throws(ProtocolError) in try VringFileIndex(index: index, hasFileDescriptor: hasFd) }
    }

    mutating func configAccess() -> ConfigAccess {
        let size = 1 + u32(below: 256)
        let offset = u32(below: 256 - size + 1)
        let flags = u32(below: 2)
        let data = bytes(Int(size))
        return valid { () throws(ProtocolError) in try ConfigAccess(offset: offset, flags: flags, bytes: data) }
    }

    mutating func inflight() -> InflightDescription {
        InflightDescription(
            mmapSize: edgyU64(), mmapOffset: edgyU64(), numQueues: UInt16(truncatingIfNeeded: next()),
            queueSize: UInt16(truncatingIfNeeded: next()))
    }

    mutating func iotlbPermission() -> IOTLBPermission {
        IOTLBPermission.allCases[below(4)]
    }

    /// A decoding context for a random connection: random queue count, slots, offered
    /// features, packed or split rings; every feature gate open.
    mutating func context() -> DecodingContext {
        var context = permissiveContext
        context.queueCount = 1 + u32(below: 300)
        context.maximumMemorySlots = 1 + u32(below: 16)
        context.offeredFeatures = VirtioFeatures(rawValue: next())
        if oneIn(2) {
            context.negotiatedFeatures.insert(.ringPacked)
        }
        context.offeredProtocolFeatures = oneIn(3) ? nil : ProtocolFeatures(rawValue: next())
        return context
    }

    /// A random valid message for `request` under `context`.
    mutating func message(_ request: VhostUserRequest, context: DecodingContext) -> FrontEndMessage {
        let packed = context.negotiatedFeatures.contains(.ringPacked)
        let queue = u32(below: context.queueCount)
        switch request {
        case .getFeatures: return .getFeatures
        case .setFeatures:
            return .setFeatures(VirtioFeatures(rawValue: next()).intersection(context.offeredFeatures))
        case .setOwner: return .setOwner
        case .resetOwner: return .resetOwner
        case .setMemTable:
            let limit = min(8, Int(context.maximumMemorySlots))
            return .setMemTable(memoryTable(maximumCount: limit))
        case .setLogBase: return .setLogBase(LogDescription(mmapSize: edgyU64(), mmapOffset: edgyU64()))
        case .setLogFd: return .setLogFd
        case .setVringNum:
            let num = packed ? 1 + u32(below: 32768) : UInt32(1) << u32(below: 16)
            return .setVringNum(VringState(index: queue, num: num))
        case .setVringAddr:
            let flags: VringAddressFlags = oneIn(2) ? .log : []
            let address = valid { () throws(ProtocolError) in
                try VringAddress(
                    index: queue, flags: flags, descriptorTable: edgyU64(), usedRing: edgyU64(),
                    availableRing: edgyU64(), logGuestAddress: edgyU64())
            }
            return .setVringAddr(address)
        case .setVringBase:
            let num = packed ? UInt32(truncatingIfNeeded: next()) : u32(below: 1 << 16)
            return .setVringBase(VringState(index: queue, num: num))
        case .getVringBase:
            return .getVringBase(VringState(index: queue, num: UInt32(truncatingIfNeeded: next())))
        case .setVringKick: return .setVringKick(vringFileIndex(queueCount: context.queueCount))
        case .setVringCall: return .setVringCall(vringFileIndex(queueCount: context.queueCount))
        case .setVringErr: return .setVringErr(vringFileIndex(queueCount: context.queueCount))
        case .getProtocolFeatures: return .getProtocolFeatures
        case .setProtocolFeatures:
            let features = ProtocolFeatures(rawValue: next())
            return .setProtocolFeatures(context.offeredProtocolFeatures.map { features.intersection($0) } ?? features)
        case .getQueueNum: return .getQueueNum
        case .setVringEnable: return .setVringEnable(VringState(index: queue, num: u32(below: 2)))
        case .sendRarp: return .sendRarp(edgyU64())
        case .netSetMtu: return .netSetMtu(edgyU64())
        case .setBackendReqFd: return .setBackendReqFd
        case .iotlbMsg:
            if oneIn(2) {
                let size = oneIn(8) ? UInt64.max : size()
                let lastOffset = size - 1
                let iova = oneIn(8) ? UInt64.max - lastOffset : next(upperBound: UInt64.max - lastOffset)
                let uaddr = next(upperBound: UInt64.max - lastOffset)
                return .iotlbMsg(IOTLBMessage(iova: iova, size: size, userAddress: uaddr, permission: iotlbPermission(), type: .update))
            }
            // An INVALIDATE carries no address or permission: they decode as 0 and none.
            return .iotlbMsg(IOTLBMessage(
                iova: edgyU64(), size: edgyU64(), userAddress: 0, permission: .none, type: .invalidate))
        case .setVringEndian: return .setVringEndian(VringState(index: queue, num: u32(below: 2)))
        case .getConfig: return .getConfig(configAccess())
        case .setConfig: return .setConfig(configAccess())
        case .createCryptoSession: return .createCryptoSession(bytes(below(700)))
        case .closeCryptoSession: return .closeCryptoSession(edgyU64())
        case .postcopyAdvise: return .postcopyAdvise
        case .postcopyListen: return .postcopyListen
        case .postcopyEnd: return .postcopyEnd
        case .getInflightFd: return .getInflightFd(inflight())
        case .setInflightFd: return .setInflightFd(inflight())
        case .gpuSetSocket: return .gpuSetSocket
        case .resetDevice: return .resetDevice
        case .vringKick: return .vringKick(VringState(index: queue, num: UInt32(truncatingIfNeeded: next())))
        case .getMaxMemSlots: return .getMaxMemSlots
        case .addMemReg: return .addMemReg(SingleMemoryRegion(region: region()))
        case .remMemReg: return .remMemReg(SingleMemoryRegion(region: region()))
        case .setStatus: return .setStatus(UInt8(truncatingIfNeeded: next()))
        case .getStatus: return .getStatus
        case .getSharedObject:
            let uuid = bytes(16)
            return .getSharedObject(valid { () throws(ProtocolError) in try SharedObjectID(uuid: uuid) })
        case .setDeviceStateFd:
            return .setDeviceStateFd(DeviceStateTransfer(direction: oneIn(2) ? .save : .load, phase: .stopped))
        case .checkDeviceState: return .checkDeviceState
        case .getShmemConfig: return .getShmemConfig
        }
    }

    mutating func anyRequest() -> VhostUserRequest {
        VhostUserRequest.allCases[below(VhostUserRequest.allCases.count)]
    }

    /// A random valid reply and a request it answers.
    mutating func reply(context: DecodingContext) -> (Reply, FrontEndMessage) {
        switch below(9) {
        case 0: return (.features(VirtioFeatures(rawValue: next())), .getFeatures)
        case 1: return (.protocolFeatures(ProtocolFeatures(rawValue: next())), .getProtocolFeatures)
        case 2: return (.queueCount(edgyU64()), .getQueueNum)
        case 3: return (.maximumMemorySlots(edgyU64()), .getMaxMemSlots)
        case 4: return (.status(UInt8(truncatingIfNeeded: next())), .getStatus)
        case 5:
            let asked = VringState(index: u32(below: context.queueCount), num: 0)
            return (.vringBase(VringState(index: asked.index, num: UInt32(truncatingIfNeeded: next()))), .getVringBase(asked))
        case 6:
            let config = configAccess()
            let asked = valid { () throws(ProtocolError) in try ConfigAccess.read(offset: config.offset, size: config.size, flags: config.flags) }
            return (.config(config), .getConfig(asked))
        case 7:
            return (.inflight(inflight()), .getInflightFd(inflight()))
        default:
            var request = anyRequest()
            while request.hasReplyBody && ![.setLogBase, .iotlbMsg, .postcopyEnd, .checkDeviceState].contains(request) {
                request = anyRequest()
            }
            return (.ack(request: request, value: edgyU64()), message(request, context: context))
        }
    }

    /// A random valid back-end message.
    mutating func backendMessage() -> BackendMessage {
        switch below(10) {
        case 0:
            return .iotlbMsg(IOTLBMessage(
                iova: edgyU64(), size: edgyU64(), userAddress: edgyU64(), permission: iotlbPermission(),
                type: oneIn(2) ? .miss : .accessFail))
        case 1: return .configChange
        case 2: return .vringHostNotifier(VringAreaDescription(vring: vringFileIndex(queueCount: 256), size: edgyU64(), offset: edgyU64()))
        case 3: return .vringCall(VringState(index: UInt32(truncatingIfNeeded: next()), num: UInt32(truncatingIfNeeded: next())))
        case 4: return .vringErr(VringState(index: UInt32(truncatingIfNeeded: next()), num: UInt32(truncatingIfNeeded: next())))
        case 5, 6, 7:
            let uuid = bytes(16)
            let id = valid { () throws(ProtocolError) in try SharedObjectID(uuid: uuid) }
            return [BackendMessage.sharedObjectAdd(id), .sharedObjectRemove(id), .sharedObjectLookup(id)][below(3)]
        default:
            let mapping = SharedMemoryMapping(
                shmid: UInt8(truncatingIfNeeded: next()), fdOffset: edgyU64(), shmOffset: edgyU64(),
                length: edgyU64(), flags: edgyU64())
            return oneIn(2) ? .shmemMap(mapping) : .shmemUnmap(mapping)
        }
    }
}
