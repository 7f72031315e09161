import Testing
import VhostUserProtocol

/// A message exactly as QEMU 7.2 puts it on the socket (native = little-endian byte order),
/// the number of fds it attaches, and what it must decode to.
struct Fixture: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    let fds: Int
    let expected: FrontEndMessage

    var testDescription: String { name }
}

// Memory layout of a 1 GiB x86 guest as QEMU hands it to vhost-user: RAM below the legacy VGA
// hole and RAM above it, both in one memfd mapped at 0x7f3a_c000_0000.
let lowRAM = valid { () throws(ProtocolError) in
    try MemoryRegionDescription(guestPhysicalAddress: 0, size: 0xA_0000, userAddress: 0x7F3A_C000_0000, mmapOffset: 0)
}
let highRAM = valid { () throws(ProtocolError) in
    try MemoryRegionDescription(
        guestPhysicalAddress: 0xC_0000, size: 0x3FF4_0000, userAddress: 0x7F3A_C00C_0000, mmapOffset: 0xC_0000)
}
let lowRAMBytes: [UInt8] = [
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // guest_phys_addr 0
    0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00,  // memory_size 0xa0000
    0x00, 0x00, 0x00, 0xC0, 0x3A, 0x7F, 0x00, 0x00,  // userspace_addr 0x7f3ac0000000
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_offset 0
]
let highRAMBytes: [UInt8] = [
    0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00,  // guest_phys_addr 0xc0000
    0x00, 0x00, 0xF4, 0x3F, 0x00, 0x00, 0x00, 0x00,  // memory_size 0x3ff40000
    0x00, 0x00, 0x0C, 0xC0, 0x3A, 0x7F, 0x00, 0x00,  // userspace_addr 0x7f3ac00c0000
    0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_offset 0xc0000
]

/// One fixture per front-end request (and a few requests in more than one form).
let qemuFixtures: [Fixture] = [
    Fixture(
        name: "GET_FEATURES", bytes: [0x01, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .getFeatures),
    Fixture(
        name: "SET_FEATURES VERSION_1|PROTOCOL_FEATURES|FLUSH",
        bytes: [0x02, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x00, 0x02, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00],
        fds: 0, expected: .setFeatures([.version1, .protocolFeatures, .flush])),
    Fixture(
        name: "SET_OWNER", bytes: [0x03, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .setOwner),
    Fixture(
        name: "RESET_OWNER", bytes: [0x04, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .resetOwner),
    Fixture(
        name: "SET_MEM_TABLE with 2 regions and NEED_REPLY",
        bytes: [0x05, 0, 0, 0, 0x09, 0, 0, 0, 0x48, 0, 0, 0,  // 8 + 2·32 = 72 bytes
                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // nregions 2, padding
            + lowRAMBytes + highRAMBytes,
        fds: 2,
        expected: .setMemTable(valid { () throws(ProtocolError) in try MemoryTableDescription(regions: [lowRAM, highRAM]) })),
    Fixture(
        name: "SET_LOG_BASE",
        bytes: [0x06, 0, 0, 0, 0x01, 0, 0, 0, 0x10, 0, 0, 0,
                0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_size 0x8000
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],  // mmap_offset 0
        fds: 1, expected: .setLogBase(LogDescription(mmapSize: 0x8000, mmapOffset: 0))),
    Fixture(
        name: "SET_LOG_FD", bytes: [0x07, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 1,
        expected: .setLogFd),
    Fixture(
        name: "SET_VRING_NUM 128",
        bytes: [0x08, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00],
        fds: 0, expected: .setVringNum(VringState(index: 0, num: 128))),
    Fixture(
        name: "SET_VRING_ADDR",
        bytes: [0x09, 0, 0, 0, 0x01, 0, 0, 0, 0x28, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00,  // index 0
                0x00, 0x00, 0x00, 0x00,  // flags 0
                0x00, 0xE0, 0xC5, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // desc 0x7f3af1c5e000
                0x00, 0xF0, 0xC5, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // used 0x7f3af1c5f000
                0x00, 0xE8, 0xC5, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // avail 0x7f3af1c5e800
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],  // log_guest_addr 0
        fds: 0,
        expected: .setVringAddr(valid { () throws(ProtocolError) in
            try VringAddress(
                index: 0, flags: [], descriptorTable: 0x7F3A_F1C5_E000, usedRing: 0x7F3A_F1C5_F000,
                availableRing: 0x7F3A_F1C5_E800, logGuestAddress: 0)
        })),
    Fixture(
        name: "SET_VRING_ADDR with logging and NEED_REPLY",
        bytes: [0x09, 0, 0, 0, 0x09, 0, 0, 0, 0x28, 0, 0, 0,
                0x01, 0x00, 0x00, 0x00,  // index 1
                0x01, 0x00, 0x00, 0x00,  // flags VHOST_VRING_F_LOG
                0x00, 0x00, 0xC6, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // desc 0x7f3af1c60000
                0x00, 0x10, 0xC6, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // used 0x7f3af1c61000
                0x00, 0x08, 0xC6, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // avail 0x7f3af1c60800
                0x00, 0x10, 0x7E, 0x3F, 0x00, 0x00, 0x00, 0x00],  // log_guest_addr 0x3f7e1000
        fds: 0,
        expected: .setVringAddr(valid { () throws(ProtocolError) in
            try VringAddress(
                index: 1, flags: .log, descriptorTable: 0x7F3A_F1C6_0000, usedRing: 0x7F3A_F1C6_1000,
                availableRing: 0x7F3A_F1C6_0800, logGuestAddress: 0x3F7E_1000)
        })),
    Fixture(
        name: "SET_VRING_BASE",
        bytes: [0x0A, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x00],
        fds: 0, expected: .setVringBase(VringState(index: 0, num: 42))),
    Fixture(
        name: "GET_VRING_BASE",
        bytes: [0x0B, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 0, expected: .getVringBase(VringState(index: 1, num: 0))),
    Fixture(
        name: "SET_VRING_KICK with fd",
        bytes: [0x0C, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 1, expected: .setVringKick(valid { () throws(ProtocolError) in try VringFileIndex(index: 0, hasFileDescriptor: true) })),
    Fixture(
        name: "SET_VRING_CALL with the no-fd bit",
        bytes: [0x0D, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],  // index 3 | bit 8
        fds: 0, expected: .setVringCall(valid { () throws(ProtocolError) in try VringFileIndex(index: 3, hasFileDescriptor: false) })),
    Fixture(
        name: "SET_VRING_CALL with fd",
        bytes: [0x0D, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 1, expected: .setVringCall(valid { () throws(ProtocolError) in try VringFileIndex(index: 2, hasFileDescriptor: true) })),
    Fixture(
        name: "SET_VRING_ERR with fd",
        bytes: [0x0E, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 1, expected: .setVringErr(valid { () throws(ProtocolError) in try VringFileIndex(index: 1, hasFileDescriptor: true) })),
    Fixture(
        name: "GET_PROTOCOL_FEATURES", bytes: [0x0F, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .getProtocolFeatures),
    Fixture(
        name: "SET_PROTOCOL_FEATURES MQ|REPLY_ACK|BACKEND_REQ|CONFIG|INFLIGHT_SHMFD",
        bytes: [0x10, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x29, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 0, expected: .setProtocolFeatures([.multiQueue, .replyAck, .backendReq, .config, .inflightShmfd])),
    Fixture(
        name: "GET_QUEUE_NUM", bytes: [0x11, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .getQueueNum),
    Fixture(
        name: "SET_VRING_ENABLE 1",
        bytes: [0x12, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],
        fds: 0, expected: .setVringEnable(VringState(index: 0, num: 1))),
    Fixture(
        name: "SEND_RARP",
        bytes: [0x13, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00],  // 52:54:00:12:34:56
        fds: 0, expected: .sendRarp(0x5634_1200_5452)),
    Fixture(
        name: "NET_SET_MTU",
        bytes: [0x14, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0xDC, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 0, expected: .netSetMtu(1500)),
    Fixture(
        name: "SET_BACKEND_REQ_FD with NEED_REPLY",
        bytes: [0x15, 0, 0, 0, 0x09, 0, 0, 0, 0x00, 0, 0, 0], fds: 1, expected: .setBackendReqFd),
    Fixture(
        name: "IOTLB_MSG UPDATE",
        bytes: [0x16, 0, 0, 0, 0x09, 0, 0, 0, 0x20, 0, 0, 0,
                0x00, 0xF0, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00,  // iova 0xfffff000
                0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // size 0x1000
                0x00, 0xF0, 0xC5, 0xF1, 0x3A, 0x7F, 0x00, 0x00,  // uaddr 0x7f3af1c5f000
                0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],  // perm RW, type UPDATE, padding
        fds: 0,
        expected: .iotlbMsg(IOTLBMessage(
            iova: 0xFFFF_F000, size: 0x1000, userAddress: 0x7F3A_F1C5_F000, permission: .readWrite, type: .update))),
    Fixture(
        name: "IOTLB_MSG INVALIDATE of the whole space (size 0)",
        bytes: [0x16, 0, 0, 0, 0x09, 0, 0, 0, 0x20, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 0,
        expected: .iotlbMsg(IOTLBMessage(iova: 0, size: 0, userAddress: 0, permission: .none, type: .invalidate))),
    Fixture(
        name: "SET_VRING_ENDIAN big",
        bytes: [0x17, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],
        fds: 0, expected: .setVringEndian(VringState(index: 0, num: 1))),
    Fixture(
        name: "GET_CONFIG of 57 bytes at offset 0",
        bytes: [0x18, 0, 0, 0, 0x01, 0, 0, 0, 0x45, 0, 0, 0,  // 12 + 57 = 69 bytes
                0x00, 0x00, 0x00, 0x00,  // offset 0
                0x39, 0x00, 0x00, 0x00,  // size 57
                0x00, 0x00, 0x00, 0x00]  // flags 0
            + [UInt8](repeating: 0, count: 57),
        fds: 0, expected: .getConfig(valid { () throws(ProtocolError) in try ConfigAccess.read(offset: 0, size: 57) })),
    Fixture(
        name: "SET_CONFIG writeback byte with NEED_REPLY",
        bytes: [0x19, 0, 0, 0, 0x09, 0, 0, 0, 0x0D, 0, 0, 0,
                0x20, 0x00, 0x00, 0x00,  // offset 32 (writeback)
                0x01, 0x00, 0x00, 0x00,  // size 1
                0x00, 0x00, 0x00, 0x00,  // flags 0
                0x01],
        fds: 0, expected: .setConfig(valid { () throws(ProtocolError) in try ConfigAccess(offset: 32, bytes: [1]) })),
    Fixture(
        name: "CREATE_CRYPTO_SESSION (opaque)",
        bytes: [0x1A, 0, 0, 0, 0x01, 0, 0, 0, 0x04, 0, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF], fds: 0,
        expected: .createCryptoSession([0xDE, 0xAD, 0xBE, 0xEF])),
    Fixture(
        name: "CLOSE_CRYPTO_SESSION",
        bytes: [0x1B, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 0, expected: .closeCryptoSession(7)),
    Fixture(
        name: "POSTCOPY_ADVISE", bytes: [0x1C, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .postcopyAdvise),
    Fixture(
        name: "POSTCOPY_LISTEN", bytes: [0x1D, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .postcopyListen),
    Fixture(
        name: "POSTCOPY_END", bytes: [0x1E, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .postcopyEnd),
    Fixture(
        name: "GET_INFLIGHT_FD for 4 queues of 256",
        bytes: [0x1F, 0, 0, 0, 0x01, 0, 0, 0, 0x18, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_size 0
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_offset 0
                0x04, 0x00, 0x00, 0x01,  // num_queues 4, queue_size 256
                0x00, 0x00, 0x00, 0x00],  // padding
        fds: 0, expected: .getInflightFd(InflightDescription(mmapSize: 0, mmapOffset: 0, numQueues: 4, queueSize: 256))),
    Fixture(
        name: "SET_INFLIGHT_FD",
        bytes: [0x20, 0, 0, 0, 0x01, 0, 0, 0, 0x18, 0, 0, 0,
                0x80, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_size 0x880
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // mmap_offset 0
                0x01, 0x00, 0x80, 0x00,  // num_queues 1, queue_size 128
                0x00, 0x00, 0x00, 0x00],
        fds: 1, expected: .setInflightFd(InflightDescription(mmapSize: 0x880, mmapOffset: 0, numQueues: 1, queueSize: 128))),
    Fixture(
        name: "GPU_SET_SOCKET", bytes: [0x21, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 1,
        expected: .gpuSetSocket),
    Fixture(
        name: "RESET_DEVICE", bytes: [0x22, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .resetDevice),
    Fixture(
        name: "VRING_KICK",
        bytes: [0x23, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 0, expected: .vringKick(VringState(index: 2, num: 0))),
    Fixture(
        name: "GET_MAX_MEM_SLOTS", bytes: [0x24, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .getMaxMemSlots),
    Fixture(
        name: "ADD_MEM_REG with NEED_REPLY",
        bytes: [0x25, 0, 0, 0, 0x09, 0, 0, 0, 0x28, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // padding
            + highRAMBytes,
        fds: 1, expected: .addMemReg(SingleMemoryRegion(region: highRAM))),
    Fixture(
        name: "REM_MEM_REG without fd",
        bytes: [0x26, 0, 0, 0, 0x09, 0, 0, 0, 0x28, 0, 0, 0,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // padding
            + lowRAMBytes,
        fds: 0, expected: .remMemReg(SingleMemoryRegion(region: lowRAM))),
    Fixture(
        name: "SET_STATUS ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK",
        bytes: [0x27, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x0F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 0, expected: .setStatus(0x0F)),
    Fixture(
        name: "GET_STATUS", bytes: [0x28, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .getStatus),
    Fixture(
        name: "GET_SHARED_OBJECT",
        bytes: [0x29, 0, 0, 0, 0x01, 0, 0, 0, 0x10, 0, 0, 0,
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10],
        fds: 0, expected: .getSharedObject(valid { () throws(ProtocolError) in try SharedObjectID(uuid: Array(1...16)) })),
    Fixture(
        name: "SET_DEVICE_STATE_FD load",
        bytes: [0x2A, 0, 0, 0, 0x01, 0, 0, 0, 0x08, 0, 0, 0,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
        fds: 1, expected: .setDeviceStateFd(DeviceStateTransfer(direction: .load, phase: .stopped))),
    Fixture(
        name: "CHECK_DEVICE_STATE", bytes: [0x2B, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .checkDeviceState),
    Fixture(
        name: "GET_SHMEM_CONFIG", bytes: [0x2C, 0, 0, 0, 0x01, 0, 0, 0, 0x00, 0, 0, 0], fds: 0,
        expected: .getShmemConfig),
]

@Suite("QEMU 7.2 byte fixtures")
struct QEMUFixtureTests {
    @Test("decodes to the expected message", arguments: qemuFixtures)
    func decodesFixture(_ fixture: Fixture) throws {
        let decoded = try decodeMessage(fixture.bytes, fds: fixture.fds)
        #expect(decoded == fixture.expected)
    }

    @Test("encodes back to the same bytes and fd count", arguments: qemuFixtures)
    func encodesFixture(_ fixture: Fixture) {
        let needReply = fixture.bytes[4] & 0x8 != 0
        let (bytes, fds) = fixture.expected.encoded(needReply: needReply)
        #expect(bytes == fixture.bytes)
        #expect(fds == fixture.fds)
    }

    @Test func everyRequestHasAFixture() {
        let covered = Set(qemuFixtures.map(\.expected.request))
        let missing = VhostUserRequest.allCases.filter { !covered.contains($0) }
        #expect(missing.isEmpty, "no fixture for \(missing)")
    }

    @Test func acceptsRemoveMemoryRegionWithTheFileDescriptorOlderQEMUSent() throws {
        let fixture = try #require(qemuFixtures.first { $0.expected.request == .remMemReg })
        #expect(try decodeMessage(fixture.bytes, fds: 1) == fixture.expected)
    }

    @Test func setMemTableRegionsKeepWireOrder() throws {
        let fixture = try #require(qemuFixtures.first { $0.expected.request == .setMemTable })
        guard case .setMemTable(let table) = try decodeMessage(fixture.bytes, fds: 2) else {
            Issue.record("not a memory table")
            return
        }
        #expect(table.regions == [lowRAM, highRAM])
        #expect(table.byteCount == 72)
        #expect(table.regions[1].guestPhysicalEnd == 0x4000_0000)
    }
}
