#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostTestSupport
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// The hostile-front-end table: every row is one way a front end can misbehave, the state it
/// misbehaves in, and what the back end must do about it. For every row the runner
/// (`HostileRowRunner`) checks, besides the outcome:
///
/// - the back end logged the row's specific error;
/// - a new front end is then served (QEMU 7.2's handshake and one write read back);
/// - no descriptor and no mapping leaked: in this process, every file the row sent is held
///   and mapped by nobody but the test, no socket of the connection and no queue worker is
///   left (`SentFiles`); and the whole table is replayed against the daemon binary in a child
///   process whose descriptor, mapping and thread counts must come back to their idle values
///   after every row.
enum HostileFrontEndTable {
    static let rows: [HostileRow] = framing + descriptors + memory + queueIndex + vringValues + queueSize + ringAddresses
        + wrongState + features + refusals + notifierFiles + floods

    // MARK: Header and framing

    static let framing: [HostileRow] = [
        HostileRow("bad version in flags (2)", at: .connected, .closed, logs: "unsupported protocol version 2") { scene in
            try scene.send(.getFeatures, flags: 0x2)
        },
        HostileRow("bad version in flags (0)", at: .connected, .closed, logs: "unsupported protocol version 0") { scene in
            try scene.send(.getFeatures, flags: 0x0)
        },
        HostileRow("REPLY bit set on a request", at: .negotiated, .closed, logs: "request carries the REPLY flag (flags 0x5)") { scene in
            try scene.send(.getFeatures, flags: 0x5)
        },
        HostileRow("unknown flag bit 4", at: .connected, .closed, logs: "reserved header flag bits set: 0x11") { scene in
            try scene.send(.getFeatures, flags: 0x11)
        },
        HostileRow("unknown flag bit 31", at: .negotiated, .closed, logs: "reserved header flag bits set: 0x80000001") { scene in
            try scene.send(.setOwner, flags: 0x8000_0001)
        },
        HostileRow("payload size over the 4096-byte limit", at: .connected, .closed,
                   logs: "payload of 4097 bytes exceeds the limit of 4096") { scene in
            try scene.send(code: VhostUserRequest.setMemTable.rawValue, size: 4097, [UInt8](repeating: 0, count: 64))
        },
        HostileRow("payload size 2^32 - 1", at: .connected, .closed, logs: "payload of 4294967295 bytes exceeds the limit") { scene in
            try scene.send(code: VhostUserRequest.getFeatures.rawValue, size: UInt32.max)
        },
        HostileRow("truncated payload: the peer closes mid-message", at: .negotiated, .closed, logs: "peer closed mid-message") { scene in
            try scene.send(code: VhostUserRequest.setFeatures.rawValue, size: 8, [1, 2, 3])
            _ = shutdown(scene.session.socket.rawValue, Int32(SHUT_WR))
        },
        HostileRow("unknown request code 99", at: .connected, .closed, logs: "unknown front-end request 99") { scene in
            try scene.send(code: 99, u64(0))
        },
        HostileRow("unknown request code 0", at: .negotiated, .closed, logs: "unknown front-end request 0") { scene in
            try scene.send(code: 0)
        },
        HostileRow("wrong payload size: GET_FEATURES with 8 bytes", at: .connected, .closed,
                   logs: "VHOST_USER_GET_FEATURES: payload must be 0 bytes, got 8") { scene in
            try scene.send(.getFeatures, u64(0))
        },
        HostileRow("wrong payload size: SET_FEATURES with 4 bytes", at: .connected, .closed,
                   logs: "VHOST_USER_SET_FEATURES: payload must be 8 bytes, got 4") { scene in
            try scene.send(.setFeatures, [0, 0, 0, 1])
        },
        HostileRow("wrong payload size: SET_VRING_ADDR with 32 bytes", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_VRING_ADDR: payload must be 40 bytes, got 32") { scene in
            try scene.send(.setVringAddr, Array(vringAddress(0).prefix(32)))
        },
        HostileRow("wrong payload size: SET_MEM_TABLE announcing 2 regions, carrying 1", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_MEM_TABLE: payload must be 72 bytes, got 40") { scene in
            let (region, fd) = try scene.ramRegion
            try scene.send(.setMemTable, flags: 0x9, memoryTable([regionBytes(region)], count: 2), fds: [fd])
        },
        HostileRow("wrong payload size: GET_CONFIG whose size field disagrees", at: .negotiated, .closed,
                   logs: "VHOST_USER_GET_CONFIG: payload must be 69 bytes, got 22") { scene in
            try scene.send(.getConfig, Array(configAccess(offset: 0, size: 57).prefix(22)))
        },
    ]

    // MARK: File descriptors

    static let descriptors: [HostileRow] = [
        HostileRow("GET_FEATURES with 3 memfds attached", at: .connected, .closed,
                   logs: "VHOST_USER_GET_FEATURES: expected 0 file descriptors, got 3") { scene in
            try scene.send(.getFeatures, fds: [try scene.memfd(), try scene.memfd(), try scene.memfd()])
        },
        HostileRow("SET_OWNER with an eventfd attached", at: .connected, .closed,
                   logs: "VHOST_USER_SET_OWNER: expected 0 file descriptors, got 1") { scene in
            try scene.send(.setOwner, fds: [try scene.eventfd().rawValue])
        },
        HostileRow("SET_VRING_NUM with a socket attached", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_VRING_NUM: expected 0 file descriptors, got 1") { scene in
            try scene.send(.setVringNum, vringState(0, 128), fds: [try scene.socket()])
        },
        HostileRow("SET_VRING_CALL with the no-fd bit and an fd", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_VRING_CALL: expected 0 file descriptors, got 1") { scene in
            try scene.send(.setVringCall, vringFile(0, noFD: true), fds: [try scene.eventfd().rawValue])
        },
        HostileRow("SET_VRING_KICK with neither an fd nor the no-fd bit", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_VRING_KICK: expected 1 file descriptors, got 0") { scene in
            try scene.send(.setVringKick, vringFile(0))
        },
        HostileRow("ADD_MEM_REG without an fd", at: .negotiated, .closed,
                   logs: "VHOST_USER_ADD_MEM_REG: expected 1 file descriptors, got 0") { scene in
            let (region, _) = try scene.ramRegion
            try scene.send(.addMemReg, flags: 0x9, singleRegion(regionBytes(region)))
        },
        HostileRow("SET_MEM_TABLE with fewer fds than regions (2 regions, 1 fd)", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_MEM_TABLE: expected 2 file descriptors, got 1") { scene in
            let (region, fd) = try scene.ramRegion
            let second = regionBytes(gpa: 1 << 32, size: 1 << 20, uva: 0x7f10_0000_0000)
            try scene.send(.setMemTable, flags: 0x9, memoryTable([regionBytes(region), second]), fds: [fd])
        },
        HostileRow("SET_MEM_TABLE with more fds than regions (1 region, 3 fds)", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_MEM_TABLE: expected 1 file descriptors, got 3") { scene in
            let (region, fd) = try scene.ramRegion
            try scene.send(.setMemTable, flags: 0x9, memoryTable([regionBytes(region)]),
                           fds: [fd, try scene.memfd(), try scene.eventfd().rawValue])
        },
        HostileRow("more than 32 fds on one message (MSG_CTRUNC)", at: .connected, .closed,
                   logs: "too many file descriptors attached to one message") { scene in
            let memfd = try scene.memfd()
            let eventfd = try scene.eventfd().rawValue
            try scene.send(.getFeatures, fds: Array(repeating: memfd, count: 20) + Array(repeating: eventfd, count: 20))
        },
    ]

    // MARK: Memory tables

    /// A table with one region described by `region` and `fd` standing in for its memory.
    static func table(_ scene: HostileScene, fd: Int32, size: UInt64 = 1 << 20, offset: UInt64 = 0) throws {
        try scene.send(.setMemTable, flags: 0x9, memoryTable([regionBytes(gpa: 0, size: size, uva: 0x7f00_0000_0000, offset: offset)]),
                       fds: [fd])
    }

    static let memory: [HostileRow] = [
        HostileRow("an eventfd as a memory region", at: .negotiated, .closed, logs: "mappingFailed") { scene in
            try table(scene, fd: try scene.eventfd().rawValue)
        },
        HostileRow("a socket as a memory region", at: .negotiated, .closed, logs: "mappingFailed") { scene in
            try table(scene, fd: try scene.socket())
        },
        HostileRow("overlapping regions in guest-physical space", at: .negotiated, .closed,
                   logs: "memory regions overlap in guest physical address space") { scene in
            let fd = try scene.memfd(size: 2 << 20)
            try scene.send(.setMemTable, flags: 0x9, memoryTable([
                regionBytes(gpa: 0, size: 1 << 20, uva: 0x7f00_0000_0000),
                regionBytes(gpa: 0x8_0000, size: 1 << 20, uva: 0x7f10_0000_0000, offset: 1 << 20),
            ]), fds: [fd, fd])
        },
        HostileRow("overlapping regions in front-end virtual space", at: .negotiated, .closed,
                   logs: "memory regions overlap in front-end virtual address space") { scene in
            let fd = try scene.memfd(size: 2 << 20)
            try scene.send(.setMemTable, flags: 0x9, memoryTable([
                regionBytes(gpa: 0, size: 1 << 20, uva: 0x7f00_0000_0000),
                regionBytes(gpa: 1 << 30, size: 1 << 20, uva: 0x7f00_0008_0000, offset: 1 << 20),
            ]), fds: [fd, fd])
        },
        HostileRow("a region wrapping 2^64 in guest-physical space", at: .negotiated, .closed,
                   logs: "guest physical range 0xfffffffffffff000 + 0x2000 overflows 64 bits") { scene in
            try scene.send(.setMemTable, flags: 0x9, memoryTable([regionBytes(gpa: 0xFFFF_FFFF_FFFF_F000, size: 0x2000, uva: 0x7f00_0000_0000)]),
                           fds: [try scene.memfd()])
        },
        HostileRow("a region wrapping 2^64 in front-end virtual space", at: .negotiated, .closed,
                   logs: "front-end virtual range 0xffffffffffffff00 + 0x1000 overflows 64 bits") { scene in
            try scene.send(.setMemTable, flags: 0x9, memoryTable([regionBytes(gpa: 0, size: 0x1000, uva: 0xFFFF_FFFF_FFFF_FF00)]),
                           fds: [try scene.memfd()])
        },
        HostileRow("a region whose mmap offset wraps 2^64", at: .negotiated, .closed,
                   logs: "mmap offset range 0xfffffffffffff000 + 0x1000 overflows 64 bits") { scene in
            try scene.send(.setMemTable, flags: 0x9, memoryTable([regionBytes(gpa: 0, size: 0x1000, uva: 0x7f00_0000_0000, offset: 0xFFFF_FFFF_FFFF_F000)]),
                           fds: [try scene.memfd()])
        },
        HostileRow("a zero-size region", at: .negotiated, .closed, logs: "memory region has size 0") { scene in
            try table(scene, fd: try scene.memfd(), size: 0)
        },
        HostileRow("mmap offset past the end of the memfd", at: .negotiated, .closed, logs: "mmapOffsetPastEndOfFile") { scene in
            try table(scene, fd: try scene.memfd(size: 1 << 20), size: 4096, offset: 1 << 20)
        },
        HostileRow("a region larger than its memfd", at: .negotiated, .closed, logs: "mmapOffsetPastEndOfFile") { scene in
            try table(scene, fd: try scene.memfd(size: 1 << 20), size: 2 << 20)
        },
        HostileRow("SET_MEM_TABLE with no regions", at: .negotiated, .closed, logs: "memory table has no regions") { scene in
            try scene.send(.setMemTable, flags: 0x9, memoryTable([]))
        },
        HostileRow("SET_MEM_TABLE with 9 regions", at: .negotiated, .closed, logs: "9 memory regions exceed the limit of 8") { scene in
            let fd = try scene.memfd(size: 9 << 12)
            let regions = (0..<9).map { UInt64($0) }.map { regionBytes(gpa: $0 << 20, size: 4096, uva: 0x7f00_0000_0000 + ($0 << 20), offset: $0 << 12) }
            try scene.send(.setMemTable, flags: 0x9, memoryTable(regions), fds: Array(repeating: fd, count: 9))
        },
        HostileRow("ADD_MEM_REG overlapping a region already mapped", at: .memoryInstalled, .closed, logs: "overlappingRegions") { scene in
            try scene.send(.addMemReg, flags: 0x9, singleRegion(regionBytes(gpa: 4096, size: 4096, uva: 0x7f20_0000_0000)),
                           fds: [try scene.memfd()])
        },
        HostileRow("ADD_MEM_REG with an eventfd as its memory", at: .memoryInstalled, .closed, logs: "mappingFailed") { scene in
            try scene.send(.addMemReg, flags: 0x9, singleRegion(regionBytes(gpa: 1 << 32, size: 4096, uva: 0x7f20_0000_0000)),
                           fds: [try scene.eventfd().rawValue])
        },
        HostileRow("REM_MEM_REG of a region not in the table", at: .memoryInstalled, .closed, logs: "noMatchingRegion") { scene in
            try scene.send(.remMemReg, flags: 0x9, singleRegion(regionBytes(gpa: 1 << 32, size: 4096, uva: 0x7f20_0000_0000)))
        },
    ]

    // MARK: Queue index out of range, on every vring request

    static let outOfRange = "vring index 2 out of range (device has 2 queues)"

    static let queueIndex: [HostileRow] = [
        HostileRow("queue index out of range: SET_VRING_NUM", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.setVringNum, vringState(2, 128))
        },
        HostileRow("queue index 2^32 - 1: SET_VRING_NUM", at: .negotiated, .closed,
                   logs: "vring index 4294967295 out of range") { scene in
            try scene.send(.setVringNum, vringState(UInt32.max, 128))
        },
        HostileRow("queue index out of range: SET_VRING_ADDR", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.setVringAddr, vringAddress(2))
        },
        HostileRow("queue index out of range: SET_VRING_BASE", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.setVringBase, vringState(2, 0))
        },
        HostileRow("queue index out of range: GET_VRING_BASE", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.getVringBase, vringState(2, 0))
        },
        HostileRow("queue index out of range: SET_VRING_KICK", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.setVringKick, vringFile(2), fds: [try scene.eventfd().rawValue])
        },
        HostileRow("queue index out of range: SET_VRING_CALL", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.setVringCall, vringFile(2), fds: [try scene.eventfd().rawValue])
        },
        HostileRow("queue index 255: SET_VRING_ERR", at: .negotiated, .closed,
                   logs: "vring index 255 out of range (device has 2 queues)") { scene in
            try scene.send(.setVringErr, vringFile(255), fds: [try scene.eventfd().rawValue])
        },
        HostileRow("queue index out of range: SET_VRING_ENABLE", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.setVringEnable, vringState(2, 1))
        },
        HostileRow("queue index out of range: SET_VRING_ENDIAN", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.setVringEndian, vringState(2, 0))
        },
        HostileRow("queue index out of range: VRING_KICK", at: .negotiated, .closed, logs: outOfRange) { scene in
            try scene.send(.vringKick, vringState(2, 0))
        },
    ]

    // MARK: Values a vring request may not carry

    static let vringValues: [HostileRow] = [
        HostileRow("SET_VRING_ENABLE with 2", at: .negotiated, .closed, logs: "SET_VRING_ENABLE value 2 is neither 0 nor 1") { scene in
            try scene.send(.setVringEnable, vringState(0, 2))
        },
        HostileRow("SET_VRING_BASE with reserved bits 16-31 set (split ring)", at: .negotiated, .closed,
                   logs: "split vring base 0x10000 has reserved bits 16-31 set") { scene in
            try scene.send(.setVringBase, vringState(0, 0x1_0000))
        },
        HostileRow("SET_VRING_CALL with a reserved bit in the file index", at: .negotiated, .closed,
                   logs: "vring file index 0x200 has reserved bits set") { scene in
            try scene.send(.setVringCall, u64(0x200), fds: [try scene.eventfd().rawValue])
        },
        HostileRow("SET_VRING_ADDR with an undefined flag", at: .negotiated, .closed,
                   logs: "vring address flags 0x2 has bits other than VHOST_VRING_F_LOG") { scene in
            var payload = vringAddress(0)
            payload[4] = 2
            try scene.send(.setVringAddr, payload)
        },
        HostileRow("GET_CONFIG past the 256-byte config space", at: .negotiated, .closed,
                   logs: "config access of 57 bytes at offset 200 is outside") { scene in
            try scene.send(.getConfig, configAccess(offset: 200, size: 57))
        },
    ]

    // MARK: Queue sizes

    static let queueSize: [HostileRow] = [
        HostileRow("queue size 0", at: .negotiated, .closed, logs: "invalid queue size 0") { scene in
            try scene.send(.setVringNum, vringState(0, 0))
        },
        HostileRow("queue size not a power of two (100)", at: .negotiated, .closed, logs: "invalid queue size 100") { scene in
            try scene.send(.setVringNum, vringState(0, 100))
        },
        // No reply can refuse SET_VRING_NUM: the ring is recorded, and once started every
        // request on it fails (RingSizeTests shows the guest's side).
        HostileRow("queue size above the device's maximum (256 > 128)", at: .negotiated, .served, logs: nil) { scene in
            try scene.send(.setVringNum, vringState(1, 256))
        },
        HostileRow("queue size above the split-ring maximum (65536)", at: .negotiated, .closed,
                   logs: "invalid queue size 65536") { scene in
            try scene.send(.setVringNum, vringState(0, 65536))
        },
    ]

    // MARK: Ring addresses (the ring must not start; the daemon must not crash)

    static let ringAddresses: [HostileRow] = [
        HostileRow("a memfd as the kick descriptor (epoll cannot watch it)", at: .memoryInstalled, .queueBroken(0),
                   logs: "the kick descriptor cannot be watched") { scene in
            try scene.startRing(0, kick: try scene.memfd())
        },
        HostileRow("descriptor table not 16-byte aligned", at: .memoryInstalled, .queueBroken(0),
                   logs: "ringMisaligned(VirtioCore.VirtqueueError.Ring.descriptorTable") { scene in
            try scene.startRing(0, descriptorOffset: 8)
        },
        HostileRow("available ring not 2-byte aligned", at: .memoryInstalled, .queueBroken(0),
                   logs: "ringMisaligned(VirtioCore.VirtqueueError.Ring.availableRing") { scene in
            try scene.startRing(0, availableOffset: 1)
        },
        HostileRow("used ring not 4-byte aligned", at: .memoryInstalled, .queueBroken(1),
                   logs: "ringMisaligned(VirtioCore.VirtqueueError.Ring.usedRing") { scene in
            try scene.startRing(1, usedOffset: 2)
        },
        HostileRow("descriptor table outside guest memory", at: .memoryInstalled, .queueBroken(0),
                   logs: "ringNotInGuestMemory(VirtioCore.VirtqueueError.Ring.descriptorTable") { scene in
            try scene.startRing(0, descriptorOffset: 64 << 20)
        },
        HostileRow("used ring running past the end of guest memory", at: .memoryInstalled, .queueBroken(0),
                   logs: "ringNotInGuestMemory(VirtioCore.VirtqueueError.Ring.usedRing") { scene in
            let used = scene.guest.queues[0].frontEndVirtualAddresses.usedRing.rawValue
            let end = scene.guest.ram.regions[0].frontEndVirtualStart.rawValue + UInt64(scene.guest.ram.regions[0].size)
            try scene.startRing(0, usedOffset: Int64(end - 16) - Int64(used))
        },
        HostileRow("available ring at 2^64 - 2 (wraps)", at: .memoryInstalled, .queueBroken(1),
                   logs: "ringNotInGuestMemory(VirtioCore.VirtqueueError.Ring.availableRing") { scene in
            let available = scene.guest.queues[1].frontEndVirtualAddresses.availableRing.rawValue
            try scene.startRing(1, availableOffset: Int64(bitPattern: 0xFFFF_FFFF_FFFF_FFFE &- available))
        },
    ]

    // MARK: Requests in the wrong state

    static let wrongState: [HostileRow] = [
        HostileRow("SET_VRING_NUM while the ring runs", at: .ringsRunning, .closed,
                   logs: "VHOST_USER_SET_VRING_NUM refused: ring 0 is running") { scene in
            try scene.send(.setVringNum, vringState(0, 64))
        },
        HostileRow("SET_VRING_ADDR while the ring runs", at: .ringsRunning, .closed,
                   logs: "VHOST_USER_SET_VRING_ADDR refused: ring 1 is running") { scene in
            try scene.send(.setVringAddr, vringAddress(1))
        },
        HostileRow("SET_VRING_BASE while the ring runs", at: .ringsRunning, .closed,
                   logs: "VHOST_USER_SET_VRING_BASE refused: ring 0 is running") { scene in
            try scene.send(.setVringBase, vringState(0, 7))
        },
        HostileRow("SET_VRING_KICK before SET_VRING_ADDR", at: .memoryInstalled, .closed,
                   logs: "ring 0 is started before its size and addresses are set") { scene in
            try scene.send(.setVringNum, vringState(0, 128))
            try scene.send(.setVringKick, vringFile(0), fds: [try scene.eventfd().rawValue])
        },
        HostileRow("GET_CONFIG before SET_PROTOCOL_FEATURES", at: .connected, .closed,
                   logs: "VHOST_USER_GET_CONFIG requires protocol feature [CONFIG] negotiated") { scene in
            try scene.send(.getConfig, configAccess(offset: 0, size: 57))
        },
        HostileRow("ADD_MEM_REG without CONFIGURE_MEM_SLOTS negotiated", at: .connected, .closed,
                   logs: "VHOST_USER_ADD_MEM_REG requires protocol feature [CONFIGURE_MEM_SLOTS] negotiated") { scene in
            try scene.session.negotiate(wanted: FrontEndSession.qemu72BlockFeaturesWithoutVIOMMU, wantedProtocol: [.replyAck, .config])
            let (region, fd) = try scene.ramRegion
            try scene.send(.addMemReg, flags: 0x9, singleRegion(regionBytes(region)), fds: [fd])
        },
        HostileRow("SET_FEATURES dropping EVENT_IDX while rings run", at: .ringsRunning, .closed,
                   logs: "ring features changed while rings run") { scene in
            var features = scene.features
            features.remove(.eventIndex)
            features.insert(.protocolFeatures)
            try scene.send(.setFeatures, u64(features.rawValue))
        },
        // SET_LOG_BASE has a reply body under LOG_SHMFD: a log it cannot map closes the connection.
        HostileRow("SET_LOG_BASE, a log that ends past its memfd", at: .negotiated, .closed,
                   logs: "the log ends past its file (8192 > 4096 bytes)") { scene in
            try scene.send(.setLogBase, u64(8192) + u64(0), fds: [try scene.memfd(size: 4096)])
        },
        HostileRow("SET_LOG_BASE, an empty log", at: .negotiated, .closed, logs: "a log of 0 bytes") { scene in
            try scene.send(.setLogBase, u64(0) + u64(0), fds: [try scene.memfd()])
        },
        HostileRow("SET_LOG_BASE, a log larger than 1 GiB", at: .negotiated, .closed,
                   logs: "a log of 1073745920 bytes (at most 1073741824)") { scene in
            try scene.send(.setLogBase, u64((1 << 30) + 4096) + u64(0), fds: [try scene.memfd()])
        },
        HostileRow("SET_LOG_BASE, offset + size overflows", at: .negotiated, .closed,
                   logs: "offset 18446744073709551615 + size 4096 overflows") { scene in
            try scene.send(.setLogBase, u64(4096) + u64(.max), fds: [try scene.memfd()])
        },
        HostileRow("SET_LOG_BASE without the log's descriptor", at: .negotiated, .closed,
                   logs: "VHOST_USER_SET_LOG_BASE: expected 1 file descriptors, got 0") { scene in
            try scene.send(.setLogBase, u64(4096) + u64(0))
        },
        HostileRow("SET_LOG_BASE on a pipe (no size, mmap refused)", at: .negotiated, .closed,
                   logs: "cannot map the log") { scene in
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw SystemError(call: "pipe", errno: errno) }
            defer { close(ends[0]); close(ends[1]) }
            try scene.send(.setLogBase, u64(4096) + u64(0), fds: [ends[0]])
        },
        HostileRow("IOTLB_MSG, ACCESS_PLATFORM never negotiated", at: .negotiated, .closed,
                   logs: "VHOST_USER_IOTLB_MSG requires virtio feature [ACCESS_PLATFORM] negotiated") { scene in
            try scene.send(.iotlbMsg, flags: 0x9, u64(0) + u64(4096) + u64(0x7f00_0000_0000) + [3, 2, 0, 0, 0, 0, 0, 0])
        },
    ]

    // MARK: Features never offered

    static let features: [HostileRow] = [
        HostileRow("SET_PROTOCOL_FEATURES with bits never offered (QEMU 7.2's whole set)", at: .connected, .closed,
                   logs: "SET_PROTOCOL_FEATURES acknowledges features that were not offered") { scene in
            try scene.send(.getFeatures)
            _ = try scene.reply()
            try scene.send(.setProtocolFeatures, u64(FrontEndSession.qemu72ProtocolFeatures.rawValue))
        },
        HostileRow("SET_FEATURES with bits never offered (RING_PACKED)", at: .connected, .closed,
                   logs: "SET_FEATURES acknowledges features that were not offered: [RING_PACKED]") { scene in
            try scene.send(.setFeatures, u64(VirtioFeatures([.version1, .ringPacked, .protocolFeatures]).rawValue))
        },
    ]

    // MARK: Well-formed requests the back end refuses (failure ack, connection kept)

    static let refusals: [HostileRow] = [
        HostileRow("SET_VRING_KICK asking to poll (no-fd bit)", at: .memoryInstalled, .refused(.setVringKick),
                   logs: "polling rings without a kick eventfd is not supported") { scene in
            try scene.send(.setVringKick, flags: 0x9, vringFile(0, noFD: true))
        },
        HostileRow("SET_CONFIG of a read-only field (capacity)", at: .negotiated, .refused(.setConfig),
                   logs: "offset 0 size 8 is not a writable field") { scene in
            try scene.send(.setConfig, flags: 0x9, configAccess(offset: 0, size: 8))
        },
        HostileRow("SET_CONFIG with migration flags", at: .negotiated, .refused(.setConfig),
                   logs: "configuration writes for migration are not supported") { scene in
            try scene.send(.setConfig, flags: 0x9, configAccess(offset: 32, size: 1, flags: 1, [0]))
        },
        HostileRow("GET_SHMEM_CONFIG, which has a reply body and is not implemented", at: .negotiated, .closed,
                   logs: "VHOST_USER_GET_SHMEM_CONFIG is not supported by this back end") { scene in
            try scene.send(.getShmemConfig, flags: 0x9)
        },
        HostileRow("GET_SHMEM_CONFIG without NEED_REPLY (the front end still waits for a body)", at: .negotiated, .closed,
                   logs: "VHOST_USER_GET_SHMEM_CONFIG is not supported by this back end") { scene in
            try scene.send(.getShmemConfig)
        },
    ]

    // MARK: Notifier files that would block a writer

    static let notifierFiles: [HostileRow] = [
        HostileRow("a call eventfd that would block (blocking, counter full)", at: .memoryInstalled, .served, logs: nil) { scene in
            try scene.startRing(0, call: try scene.fullBlockingEventFD().rawValue)
            #expect(try scene.guest.write(sector: 1, pattern(count: 512, seed: 1)) == BlockGuest.statusOK)
            #expect(try scene.guest.write(sector: 2, pattern(count: 512, seed: 2)) == BlockGuest.statusOK)
            #expect(try scene.session.stopRing(index: 0) == 2)
        },
        HostileRow("a call fd that is a full pipe in blocking mode", at: .memoryInstalled, .served, logs: nil) { scene in
            try scene.startRing(1, call: try scene.fullBlockingPipe())
            #expect(try scene.guest.write(queue: 1, sector: 3, pattern(count: 512, seed: 3)) == BlockGuest.statusOK)
            #expect(try scene.session.stopRing(index: 1) == 1)
        },
        HostileRow("an error eventfd that would block, on a ring that breaks", at: .memoryInstalled, .served,
                   logs: "ringMisaligned(VirtioCore.VirtqueueError.Ring.descriptorTable") { scene in
            try scene.startRing(0, descriptorOffset: 8, error: try scene.fullBlockingEventFD().rawValue)
            try scene.send(.getFeatures)
            _ = try scene.reply()
            #expect(try scene.session.stopRing(index: 0) == 0)
        },
    ]

    // MARK: Floods

    static let floodCount = 20_000

    static let floods: [HostileRow] = [
        HostileRow("a flood of 20,000 GET_FEATURES, answered correctly and quickly", at: .connected, .served, logs: nil) { scene in
            let request = littleEndian(VhostUserRequest.getFeatures.rawValue) + littleEndian(UInt32(1)) + littleEndian(UInt32(0))
            let expected = try #require(try scene.session.send(.getFeatures)).encoded().bytes
            let socket = UncheckedSendable(scene.session.socket)
            // A writer thread pipelines every request while this thread reads the answers, so
            // neither side waits for the other's socket buffer.
            let writer = try TestThread {
                for _ in 0..<(floodCount / 100) {
                    try? socket.value.send(Array([[UInt8]](repeating: request, count: 100).joined()))
                }
            }
            defer { writer.join() }
            var correct = 0
            for _ in 0..<floodCount {
                guard let reply = try scene.reply(milliseconds: 10_000) else { break }
                if littleEndian(reply.header.request) + littleEndian(reply.header.flags.rawValue)
                    + littleEndian(reply.header.size) + reply.payload == expected, reply.descriptors.isEmpty {
                    correct += 1
                }
            }
            // Progress, not speed: every one of the round trips answered, each reply bounded by
            // its own wait.
            #expect(correct == floodCount)
        },
        HostileRow("GET_FEATURES sent until the socket is full, no reply ever read", at: .negotiated, .gaveUp,
                   logs: "sendmsg: Resource temporarily unavailable") { scene in
            let sent = try scene.floodWithoutReading()
            #expect(sent > 0)
        },
        HostileRow("a flood of 20,000 GET_FEATURES each carrying an fd", at: .connected, .closed,
                   logs: "VHOST_USER_GET_FEATURES: expected 0 file descriptors, got 1") { scene in
            let eventfd = try scene.eventfd().rawValue
            var sent = 0
            while sent < floodCount {
                do {
                    try scene.send(.getFeatures, fds: [eventfd])
                } catch FrontEndError.connectionClosed {
                    break
                }
                sent += 1
            }
            #expect(sent >= 1)
        },
        HostileRow("a flood of 20,000 SET_VRING_CALL, each with the call eventfd again", at: .ringsRunning, .served, logs: nil) { scene in
            let call = try scene.eventfd()
            for _ in 0..<floodCount {
                try scene.send(.setVringCall, vringFile(0), fds: [call.rawValue])
            }
            _ = try scene.session.send(.getFeatures)
            // At most three: the latest (kept by the control plane and queued for the worker),
            // the one the worker uses, and one being handed over.
            let heldRightAfter = scene.backEndHolders(of: call.rawValue)
            #expect(heldRightAfter <= 3, "call fds queued for the worker: \(heldRightAfter)")
            #expect(scene.eventually { scene.backEndHolders(of: call.rawValue) == 1 },
                    "the back end keeps only the latest call fd")
            let pending = try scene.guest.submit(queue: 0, type: BlockGuest.RequestType.flush.rawValue, sector: 0)
            #expect(try scene.guest.complete([pending])[0].status == BlockGuest.statusOK)
            #expect(waitReadable(call.rawValue, milliseconds: 5_000), "the latest call fd is the one signalled")
        },
        HostileRow("10,000 ADD_MEM_REG and REM_MEM_REG of the same memfd while rings run", at: .ringsRunning, .served, logs: nil) { scene in
            let fd = try scene.memfd(size: 64 << 10)
            let region = try MemoryRegionDescription(guestPhysicalAddress: 1 << 32, size: 64 << 10,
                                                     userAddress: 0x7f40_0000_0000, mmapOffset: 0)
            for _ in 0..<(floodCount / 2) {
                try scene.session.addMemoryRegion(region, fd: fd)
                try scene.session.removeMemoryRegion(region)
            }
            #expect(scene.backEndHolders(of: fd) == 0)
            #expect(try scene.guest.write(sector: 5, pattern(count: 512, seed: 5)) == BlockGuest.statusOK)
        },
    ]
}

extension BackEndIntegration {
    @Suite("Hostile front end")
    struct HostileFrontEndTests {
        @Test("each hostile front end gets its specific error, leaks nothing, and the next front end is served",
              arguments: HostileFrontEndTable.rows)
        func hostileFrontEnd(_ row: HostileRow) throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let files = try HostileRowRunner.run(row, on: backEnd)
            #expect(files.leaks(socketPath: backEnd.socketPath) == [], "row: \(row.name)")
        }
    }
}

extension DaemonBinaryTests {
    @Suite("Hostile front end against the daemon binary")
    struct HostileFrontEndBinaryTests {
        @Test("the daemon binary, after every row of the table, holds exactly the descriptors, mappings and threads it held idle")
        func wholeTableAgainstTheDaemonBinary() throws {
            let daemon = try ChildDaemon()
            defer { daemon.stop() }
            expectServesNewFrontEnd(daemon)
            let idle = try #require(daemon.waitIdle(), "the daemon did not become idle: \(daemon.transcript(after: 0))")
            for row in HostileFrontEndTable.rows {
                let files = try HostileRowRunner.run(row, on: daemon)
                let now = daemon.waitIdle(matching: idle)
                #expect(now == idle, "after row \(row.name)")
                #expect(files.leaks(socketPath: nil, daemonProcess: daemon.pid) == [], "row: \(row.name)")
                guard now == idle else { break }
            }
            #expect(daemon.stop(), "the daemon did not exit on SIGTERM")
        }
    }
}
