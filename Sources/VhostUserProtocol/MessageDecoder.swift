import VirtioSpec

// Validation of front-end → back-end messages, in one place and in one fixed order.
//
// `MessageDecoder.decode` checks, and stops at the first failure:
//
//   0. Framing: the header is valid (version 1, no reserved flag bits, size ≤ 4096), the
//      payload passed in is exactly `header.size` bytes, and the REPLY flag is clear.
//   1. Known request: the code is one of 1...44.
//   2. Payload size: exactly the size this request carries. For SET_MEM_TABLE the size is
//      8 + 32·nregions and for GET/SET_CONFIG 12 + size, with the count read from the payload.
//   3. Parse: the payload becomes a typed value, checking ranges inside it (reserved bits,
//      enum values, region sizes and overflow, region overlap, config bounds, status byte).
//   4. File descriptors: the number that came with the message is the one this request
//      (and, for SET_MEM_TABLE and SET_VRING_KICK/CALL/ERR, its payload) calls for.
//   5. Semantics: vring index < queueCount for every vring request; queue size, ring base,
//      enable and endian values; region count ≤ maximumMemorySlots; SET_FEATURES and
//      SET_PROTOCOL_FEATURES only acknowledge offered bits; IOTLB_MSG is an UPDATE or an
//      INVALIDATE and an UPDATE covers a non-empty, non-wrapping range.
//   6. Feature gating: the request is legal under the negotiated features
//      (`VhostUserRequest.gate`).
//
// Everything here is pure: no I/O, no state but what `DecodingContext` says.

/// Turns a received front-end message (header, payload, number of fds) into a validated
/// `FrontEndMessage`, or says precisely what is wrong with it.
public enum MessageDecoder {
    /// The largest valid queue size (split and packed rings alike: 2^15).
    public static let maximumQueueSize = UInt32(SplitRing.maximumQueueSize)

    /// Decodes and validates one front-end message. See the file header for the order of the
    /// checks; the first failing check decides the error.
    ///
    /// - Parameters:
    ///   - header: The received header.
    ///   - payload: The `header.size` bytes that followed it.
    ///   - fileDescriptorCount: How many fds arrived with the message (SCM_RIGHTS).
    ///   - context: What the connection has offered and negotiated so far.
    /// - Throws: A `ProtocolError` naming the first rule the message breaks. Framing errors
    ///   (`isFramingError`) mean the connection must be closed.
    public static func decode(
        header: MessageHeader,
        payload: UnsafeRawBufferPointer,
        fileDescriptorCount: Int,
        context: DecodingContext
    ) throws(ProtocolError) -> FrontEndMessage {
        // 0. Framing.
        try header.validate()
        guard Int(exactly: header.size) == payload.count else {
            throw .payloadSizeMismatchesHeader(headerSize: header.size, actual: payload.count)
        }
        guard !header.flags.contains(.reply) else {
            throw .replyFlagOnRequest(flags: header.flags.rawValue)
        }
        // 1. Known request.
        guard let request = VhostUserRequest(rawValue: header.request) else {
            throw .unknownRequest(header.request)
        }
        // 2. Payload size.
        try checkPayloadSize(request: request, payload: payload)
        // 3. Parse.
        let message = try parse(request: request, payload: payload)
        // 4. File descriptors.
        let allowed = requiredFileDescriptorCount(for: message)
        guard allowed.contains(fileDescriptorCount) else {
            throw .wrongFileDescriptorCount(request: request, expected: allowed, actual: fileDescriptorCount)
        }
        // 5. Semantics.
        try checkSemantics(of: message, context: context)
        // 6. Feature gating.
        if let gate = request.gate, !context.allows(gate) {
            throw .featureNotNegotiated(request: request, missing: gate)
        }
        return message
    }

    /// How many file descriptors must come with `message`.
    ///
    /// SET_MEM_TABLE: one per region. ADD_MEM_REG: 1. REM_MEM_REG: 0 or 1 (the specification
    /// lets the back end accept and close one; older QEMU sent it). SET_VRING_KICK/CALL/ERR: 1,
    /// or 0 when the no-fd bit is set. SET_BACKEND_REQ_FD, SET_LOG_BASE, SET_LOG_FD,
    /// SET_INFLIGHT_FD, GPU_SET_SOCKET, SET_DEVICE_STATE_FD: 1. Everything else: 0.
    /// The lower bound is what `FrontEndMessage.encoded(needReply:)` attaches.
    public static func requiredFileDescriptorCount(for message: FrontEndMessage) -> ClosedRange<Int> {
        switch message {
        case .setMemTable(let table):
            return table.regions.count...table.regions.count
        case .setVringKick(let file), .setVringCall(let file), .setVringErr(let file):
            return file.fileDescriptorCount...file.fileDescriptorCount
        case .remMemReg:
            return 0...1
        case .addMemReg, .setBackendReqFd, .setLogBase, .setLogFd, .setInflightFd, .gpuSetSocket,
             .setDeviceStateFd:
            return 1...1
        case .getFeatures, .setFeatures, .setOwner, .resetOwner, .setVringNum, .setVringAddr,
             .setVringBase, .getVringBase, .getProtocolFeatures, .setProtocolFeatures,
             .getQueueNum, .setVringEnable, .sendRarp, .netSetMtu, .iotlbMsg, .setVringEndian,
             .getConfig, .setConfig, .createCryptoSession, .closeCryptoSession,
             .postcopyAdvise, .postcopyListen, .postcopyEnd, .getInflightFd, .resetDevice,
             .vringKick, .getMaxMemSlots, .setStatus, .getStatus, .getSharedObject,
             .checkDeviceState, .getShmemConfig:
            return 0...0
        }
    }

    // MARK: - Steps

    /// Step 2: the payload length for `request`.
    static func checkPayloadSize(request: VhostUserRequest, payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        let actual = payload.count
        let expected: Int
        switch request.payloadLength {
        case .fixed(let count):
            expected = count
        case .opaque:
            return
        case .memoryTable:
            guard actual >= MemoryTableDescription.headerByteCount else {
                throw .wrongPayloadSize(
                    request: request, expected: MemoryTableDescription.byteCount(regionCount: 1),
                    actual: actual)
            }
            // nregions ≤ UInt32.max, so 8 + 32·nregions < 2^38 fits in Int on 64-bit hosts;
            // the checked arithmetic keeps that true on any host.
            let count = loadUInt32(payload, at: 0)
            guard let regions = Int(exactly: count) else {
                throw .tooManyRegions(count: count, limit: UInt32(MemoryTableDescription.maximumRegionCount))
            }
            let (body, overflowMultiply) = regions.multipliedReportingOverflow(by: MemoryRegionDescription.byteCount)
            let (total, overflowAdd) = body.addingReportingOverflow(MemoryTableDescription.headerByteCount)
            guard !overflowMultiply, !overflowAdd else {
                throw .tooManyRegions(count: count, limit: UInt32(MemoryTableDescription.maximumRegionCount))
            }
            expected = total
        case .configAccess:
            guard actual >= ConfigAccess.headerByteCount else {
                throw .wrongPayloadSize(request: request, expected: ConfigAccess.headerByteCount + 1, actual: actual)
            }
            let size = loadUInt32(payload, at: 4)
            guard let sizeCount = Int(exactly: size),
                  case let (total, false) = ConfigAccess.headerByteCount.addingReportingOverflow(sizeCount)
            else {
                throw .invalidConfigAccess(offset: loadUInt32(payload, at: 0), size: size)
            }
            expected = total
        }
        guard actual == expected else {
            throw .wrongPayloadSize(request: request, expected: expected, actual: actual)
        }
    }

    /// Step 3: the typed message. The payload length was checked in step 2.
    static func parse(request: VhostUserRequest, payload: UnsafeRawBufferPointer) throws(ProtocolError) -> FrontEndMessage {
        switch request {
        case .getFeatures: return .getFeatures
        case .setFeatures: return .setFeatures(VirtioFeatures(rawValue: try readUInt64(payload)))
        case .setOwner: return .setOwner
        case .resetOwner: return .resetOwner
        case .setMemTable: return .setMemTable(try MemoryTableDescription(parsing: payload))
        case .setLogBase: return .setLogBase(try LogDescription(parsing: payload))
        case .setLogFd: return .setLogFd
        case .setVringNum: return .setVringNum(try VringState(parsing: payload))
        case .setVringAddr: return .setVringAddr(try VringAddress(parsing: payload))
        case .setVringBase: return .setVringBase(try VringState(parsing: payload))
        case .getVringBase: return .getVringBase(try VringState(parsing: payload))
        case .setVringKick: return .setVringKick(try VringFileIndex(parsing: payload))
        case .setVringCall: return .setVringCall(try VringFileIndex(parsing: payload))
        case .setVringErr: return .setVringErr(try VringFileIndex(parsing: payload))
        case .getProtocolFeatures: return .getProtocolFeatures
        case .setProtocolFeatures:
            return .setProtocolFeatures(ProtocolFeatures(rawValue: try readUInt64(payload)))
        case .getQueueNum: return .getQueueNum
        case .setVringEnable: return .setVringEnable(try VringState(parsing: payload))
        case .sendRarp: return .sendRarp(try readUInt64(payload))
        case .netSetMtu: return .netSetMtu(try readUInt64(payload))
        case .setBackendReqFd: return .setBackendReqFd
        case .iotlbMsg: return .iotlbMsg(try IOTLBMessage(parsing: payload))
        case .setVringEndian: return .setVringEndian(try VringState(parsing: payload))
        case .getConfig: return .getConfig(try ConfigAccess(parsing: payload))
        case .setConfig: return .setConfig(try ConfigAccess(parsing: payload))
        case .createCryptoSession: return .createCryptoSession(Array(payload))
        case .closeCryptoSession: return .closeCryptoSession(try readUInt64(payload))
        case .postcopyAdvise: return .postcopyAdvise
        case .postcopyListen: return .postcopyListen
        case .postcopyEnd: return .postcopyEnd
        case .getInflightFd: return .getInflightFd(try InflightDescription(parsing: payload))
        case .setInflightFd: return .setInflightFd(try InflightDescription(parsing: payload))
        case .gpuSetSocket: return .gpuSetSocket
        case .resetDevice: return .resetDevice
        case .vringKick: return .vringKick(try VringState(parsing: payload))
        case .getMaxMemSlots: return .getMaxMemSlots
        case .addMemReg: return .addMemReg(try SingleMemoryRegion(parsing: payload))
        case .remMemReg: return .remMemReg(try SingleMemoryRegion(parsing: payload))
        case .setStatus:
            let value = try readUInt64(payload)
            guard let status = UInt8(exactly: value) else {
                throw .invalidDeviceStatus(value)
            }
            return .setStatus(status)
        case .getStatus: return .getStatus
        case .getSharedObject: return .getSharedObject(try SharedObjectID(parsing: payload))
        case .setDeviceStateFd: return .setDeviceStateFd(try DeviceStateTransfer(parsing: payload))
        case .checkDeviceState: return .checkDeviceState
        case .getShmemConfig: return .getShmemConfig
        }
    }

    /// Step 5: rules that need the connection state or look across fields.
    static func checkSemantics(of message: FrontEndMessage, context: DecodingContext) throws(ProtocolError) {
        if let index = message.vringIndex, index >= context.queueCount {
            throw .queueIndexOutOfRange(index: index, count: context.queueCount)
        }
        let packed = context.negotiatedFeatures.contains(.ringPacked)
        switch message {
        case .setVringNum(let state):
            // Queue size: 1...32768, and a power of two for split rings (VIRTIO 1.2 §2.7:
            // "Queue Size value is always a power of 2"; packed rings have no such rule).
            // The device's own maximum is the caller's business.
            let size = state.num
            guard size >= 1, size <= maximumQueueSize, packed || size & (size - 1) == 0 else {
                throw .invalidQueueSize(size)
            }
        case .setVringBase(let state):
            // Split rings: num is the 16-bit next available index; bits 16–31 are reserved.
            // Packed rings use all 32 bits (indices and wrap counters).
            guard packed || state.num <= UInt32(UInt16.max) else {
                throw .invalidVringBase(state.num)
            }
        case .setVringEnable(let state):
            guard state.num <= 1 else {
                throw .invalidVringEnable(state.num)
            }
        case .setVringEndian(let state):
            guard state.num <= 1 else {
                throw .invalidVringEndian(state.num)
            }
        case .setMemTable(let table):
            let limit = min(UInt32(MemoryTableDescription.maximumRegionCount), context.maximumMemorySlots)
            let count = UInt32(truncatingIfNeeded: table.regions.count)
            guard count <= limit else {
                throw .tooManyRegions(count: count, limit: limit)
            }
        case .setFeatures(let features):
            let unoffered = features.subtracting(context.offeredFeatures)
            guard unoffered.isEmpty else {
                throw .unsupportedFeatures(unoffered)
            }
        case .setProtocolFeatures(let features):
            if let offered = context.offeredProtocolFeatures {
                let unoffered = features.subtracting(offered)
                guard unoffered.isEmpty else {
                    throw .unsupportedProtocolFeatures(unoffered)
                }
            }
        case .iotlbMsg(let message):
            try checkFrontEndIOTLB(message)
        case .getFeatures, .setOwner, .resetOwner, .setLogBase, .setLogFd, .setVringAddr,
             .getVringBase, .setVringKick, .setVringCall, .setVringErr, .getProtocolFeatures,
             .getQueueNum, .sendRarp, .netSetMtu, .setBackendReqFd, .getConfig, .setConfig,
             .createCryptoSession, .closeCryptoSession, .postcopyAdvise, .postcopyListen,
             .postcopyEnd, .getInflightFd, .setInflightFd, .gpuSetSocket, .resetDevice,
             .vringKick, .getMaxMemSlots, .addMemReg, .remMemReg, .setStatus, .getStatus,
             .getSharedObject, .setDeviceStateFd, .checkDeviceState, .getShmemConfig:
            break
        }
    }

    /// The front end sends UPDATE and INVALIDATE only. An UPDATE maps a non-empty range whose
    /// last byte (start + size − 1) does not wrap, in IOVA and in user address space; the
    /// range may end exactly at 2^64. INVALIDATE ranges are passed through: QEMU sends size 0
    /// to mean the whole 64-bit space.
    static func checkFrontEndIOTLB(_ message: IOTLBMessage) throws(ProtocolError) {
        switch message.type {
        case .update:
            guard message.size > 0 else {
                throw .emptyIOTLBUpdate
            }
            let lastOffset = message.size - 1
            if message.iova.addingReportingOverflow(lastOffset).overflow {
                throw .addressOverflow(.ioVirtual, start: message.iova, size: message.size)
            }
            if message.userAddress.addingReportingOverflow(lastOffset).overflow {
                throw .addressOverflow(.frontEndVirtual, start: message.userAddress, size: message.size)
            }
        case .invalidate:
            break
        case .miss, .accessFail, .batchBegin, .batchEnd:
            throw .unexpectedIOTLBMessageType(message.type)
        }
    }

    /// Reads a u64 payload (its length was checked in step 2).
    private static func readUInt64(_ payload: UnsafeRawBufferPointer) throws(ProtocolError) -> UInt64 {
        var reader = try ByteReader(payload, exactly: 8, payload: "u64")
        return try reader.readUInt64()
    }

    /// Reads a little-endian u32 at `offset`; the caller has checked `offset + 4 ≤ count`.
    private static func loadUInt32(_ payload: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in 0..<4 where offset + index < payload.count {
            value |= UInt32(payload[offset + index]) << (8 * UInt32(index))
        }
        return value
    }
}
