import VhostUserProtocol
import VirtioSpec

// Bytes exactly as QEMU 7.2 puts them on the socket, copied from the VhostUserProtocol fixtures
// (Tests/VhostUserProtocolTests/QEMUFixtures.swift and ReplyTests.swift; a test target cannot
// import another). Lines marked "same layout" are not in those files: they are a fixture with
// only the vring index changed.

func le32(_ value: UInt32) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

func le64(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

func le32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
    (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
}

/// Unwraps a value that must exist in a test (a construction error is a test bug).
func valid<T>(_ body: () throws(ProtocolError) -> T) -> T {
    do {
        return try body()
    } catch {
        fatalError("test value rejected: \(error)")
    }
}

enum QEMUBytes {
    // MARK: Memory layout: a 1 GiB x86 guest, RAM below and above the VGA hole, one memfd.

    static let lowRAM = valid { () throws(ProtocolError) in
        try MemoryRegionDescription(guestPhysicalAddress: 0, size: 0xA_0000, userAddress: 0x7F3A_C000_0000, mmapOffset: 0)
    }
    static let highRAM = valid { () throws(ProtocolError) in
        try MemoryRegionDescription(
            guestPhysicalAddress: 0xC_0000, size: 0x3FF4_0000, userAddress: 0x7F3A_C00C_0000, mmapOffset: 0xC_0000)
    }
    static let guestRAMSize: UInt64 = 0x4000_0000

    static let lowRAMBytes: [UInt8] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // guest_phys_addr 0
        0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00,  // memory_size 0xa0000
        0x00, 0x00, 0x00, 0xC0, 0x3A, 0x7F, 0x00, 0x00,  // userspace_addr 0x7f3ac0000000
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_offset 0
    ]
    static let highRAMBytes: [UInt8] = [
        0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00,  // guest_phys_addr 0xc0000
        0x00, 0x00, 0xF4, 0x3F, 0x00, 0x00, 0x00, 0x00,  // memory_size 0x3ff40000
        0x00, 0x00, 0x0C, 0xC0, 0x3A, 0x7F, 0x00, 0x00,  // userspace_addr 0x7f3ac00c0000
        0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_offset 0xc0000
    ]

    // MARK: Front end → back end

    static let getFeatures: [UInt8] = [0x01, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0]
    /// VERSION_1 | PROTOCOL_FEATURES | FLUSH
    static let setFeatures: [UInt8] = [
        0x02, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x00, 0x02, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00,
    ]
    static let setOwner: [UInt8] = [0x03, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0]
    /// Two regions (lowRAM, highRAM), NEED_REPLY.
    static let setMemTable: [UInt8] = [
        0x05, 0, 0, 0, 0x09, 0, 0, 0, 0x48, 0, 0, 0,  // 8 + 2·32 = 72 bytes
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // nregions 2, padding
    ] + lowRAMBytes + highRAMBytes
    /// Queue 0, size 128.
    static let setVringNum: [UInt8] = [
        0x08, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,
    ]
    static let descriptorTable: UInt64 = 0x7F3A_F1C5_E000
    static let usedRing: UInt64 = 0x7F3A_F1C5_F000
    static let availableRing: UInt64 = 0x7F3A_F1C5_E800
    /// Queue 0 at the addresses above, no logging.
    static let setVringAddr: [UInt8] = [
        0x09, 0, 0, 0, 0x01, 0, 0, 0, 0x28, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00,  // index 0
        0x00, 0x00, 0x00, 0x00,  // flags 0
        0x00, 0xE0, 0xC5, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // desc 0x7f3af1c5e000
        0x00, 0xF0, 0xC5, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // used 0x7f3af1c5f000
        0x00, 0xE8, 0xC5, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // avail 0x7f3af1c5e800
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // log_guest_addr 0
    ]
    /// Queue 0, next avail index 42.
    static let setVringBase: [UInt8] = [
        0x0A, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x00,
    ]
    /// Queue 1.
    static let getVringBase: [UInt8] = [
        0x0B, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    /// Queue 0, fd attached.
    static let setVringKick: [UInt8] = [
        0x0C, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    /// Queue 3, no fd (bit 8).
    static let setVringCallNoFd: [UInt8] = [
        0x0D, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    /// Queue 0, fd attached (same layout as the queue 2 fixture).
    static let setVringCall: [UInt8] = [
        0x0D, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    /// Queue 0, fd attached (same layout as the queue 1 fixture).
    static let setVringErr: [UInt8] = [
        0x0E, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    /// Queue 3, no fd (same layout as the SET_VRING_CALL no-fd fixture).
    static let setVringErrNoFd: [UInt8] = [
        0x0E, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    static let getProtocolFeatures: [UInt8] = [0x0F, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0]
    /// MQ | REPLY_ACK | BACKEND_REQ | CONFIG | INFLIGHT_SHMFD
    static let setProtocolFeatures: [UInt8] = [
        0x10, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x29, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]
    static let fixtureProtocolFeatures: ProtocolFeatures = [.multiQueue, .replyAck, .backendReq, .config, .inflightShmfd]
    static let getQueueNum: [UInt8] = [0x11, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0]
    /// Queue 0, enable.
    static let setVringEnable: [UInt8] = [
        0x12, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    ]
    /// Offset 0, 57 bytes.
    static let getConfig: [UInt8] = [
        0x18, 0, 0, 0, 0x01, 0, 0, 0, 0x45, 0, 0, 0,  // 12 + 57 = 69 bytes
        0x00, 0x00, 0x00, 0x00,  // offset 0
        0x39, 0x00, 0x00, 0x00,  // size 57
        0x00, 0x00, 0x00, 0x00,  // flags 0
    ] + [UInt8](repeating: 0, count: 57)
    /// The writeback byte (offset 32) set to 1, NEED_REPLY.
    static let setConfig: [UInt8] = [
        0x19, 0, 0, 0, 0x09, 0, 0, 0, 0x0D, 0, 0, 0,
        0x20, 0x00, 0x00, 0x00,  // offset 32 (writeback)
        0x01, 0x00, 0x00, 0x00,  // size 1
        0x00, 0x00, 0x00, 0x00,  // flags 0
        0x01,
    ]
    static let resetDevice: [UInt8] = [0x22, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0]
    static let getMaxMemSlots: [UInt8] = [0x24, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0]
    /// highRAM, NEED_REPLY.
    static let addMemReg: [UInt8] = [
        0x25, 0, 0, 0, 0x09, 0, 0, 0, 0x28, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // padding
    ] + highRAMBytes
    /// lowRAM, NEED_REPLY, no fd.
    static let remMemReg: [UInt8] = [
        0x26, 0, 0, 0, 0x09, 0, 0, 0, 0x28, 0, 0, 0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // padding
    ] + lowRAMBytes

    // MARK: Back end → front end (replies, flags 0x5)

    /// VERSION_1 | PROTOCOL_FEATURES | FLUSH
    static let featuresReply: [UInt8] = [
        0x01, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x00, 0x02, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00,
    ]
    static let offeredFeatures: VirtioFeatures = [.version1, .protocolFeatures, .flush]
    /// GET_QUEUE_NUM: 4.
    static let queueNumReply: [UInt8] = [0x11, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0]
    /// GET_MAX_MEM_SLOTS: 32.
    static let maxMemSlotsReply: [UInt8] = [0x24, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0]
    /// GET_VRING_BASE: queue 1 at 42.
    static let vringBaseReply: [UInt8] = [0x0B, 0, 0, 0, 0x05, 0, 0, 0, 0x08, 0, 0, 0, 0x01, 0, 0, 0, 0x2A, 0, 0, 0]
    /// The first 8 bytes of a 1 GiB disk's config space (capacity in sectors), zero after.
    static let configBytes: [UInt8] = [0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00] + [UInt8](repeating: 0, count: 49)
    static let configReply: [UInt8] = [
        0x18, 0, 0, 0, 0x05, 0, 0, 0, 0x45, 0, 0, 0,
        0x00, 0, 0, 0, 0x39, 0, 0, 0, 0x00, 0, 0, 0,
    ] + configBytes

    /// A u64 reply (flags 0x5) to `request` carrying `value`: the GET_* answers and REPLY_ACK.
    static func u64Reply(_ request: VhostUserRequest, _ value: UInt64) -> [UInt8] {
        le32(request.rawValue) + le32(0x5) + le32(8) + le64(value)
    }
}
