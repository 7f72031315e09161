#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// One row of the hostile-front-end table: what the front end does, in which state, and what
/// the back end must do about it.
struct HostileRow: Sendable, CustomTestStringConvertible {
    /// How far the front end gets, QEMU-style, before it misbehaves.
    enum Stage: Sendable {
        /// Connected, nothing sent.
        case connected
        /// The connect handshake and SET_FEATURES.
        case negotiated
        /// ... and SET_MEM_TABLE with the guest's RAM.
        case memoryInstalled
        /// ... and both rings started and enabled, one request served.
        case ringsRunning
    }

    /// What the back end must do.
    enum Outcome: Sendable {
        /// Log the error and close the connection.
        case closed
        /// Answer a failure REPLY_ACK to `request` (sent with NEED_REPLY) and keep serving.
        case refused(VhostUserRequest)
        /// Keep serving; the queue does not run and its error eventfd is signalled.
        case queueBroken(Int)
        /// Keep serving normally: the misbehaviour must not hurt the back end (checks are in
        /// the row's action).
        case served
        /// Give up on this front end, which stays connected but stuck: the next front end is
        /// served while this one's socket is still open.
        case gaveUp
    }

    let name: String
    let stage: Stage
    let outcome: Outcome
    /// Text of the log entry the back end must write (nil: nothing in particular).
    let logged: String?
    let act: @Sendable (HostileScene) throws -> Void

    init(_ name: String, at stage: Stage, _ outcome: Outcome, logs logged: String?,
         _ act: @escaping @Sendable (HostileScene) throws -> Void) {
        self.name = name
        self.stage = stage
        self.outcome = outcome
        self.logged = logged
        self.act = act
    }

    var testDescription: String { name }
}

/// What a row's action works with: the session, the guest, and helpers that make descriptors
/// the leak check follows.
final class HostileScene {
    let session: FrontEndSession
    let guest: BlockGuest
    let features: VirtioFeatures
    let files: SentFiles
    let backEnd: BackEndUnderTest

    init(session: FrontEndSession, guest: BlockGuest, features: VirtioFeatures, files: SentFiles, backEnd: BackEndUnderTest) {
        self.session = session
        self.guest = guest
        self.features = features
        self.files = files
        self.backEnd = backEnd
    }

    // MARK: Raw messages

    /// Sends a header with `flags` and `size` (default: the payload's length), the payload and
    /// `fds`, as one sendmsg.
    func send(code: UInt32, flags: UInt32 = 0x1, size: UInt32? = nil, _ payload: [UInt8] = [], fds: [Int32] = []) throws {
        let header = littleEndian(code) + littleEndian(flags) + littleEndian(size ?? UInt32(payload.count))
        if fds.count > 32 {
            try sendWithManyDescriptors(session.socket.rawValue, header + payload, fds)
        } else {
            try session.sendRaw(bytes: header + payload, descriptors: fds)
        }
    }

    func send(_ request: VhostUserRequest, flags: UInt32 = 0x1, _ payload: [UInt8] = [], fds: [Int32] = []) throws {
        try send(code: request.rawValue, flags: flags, payload, fds: fds)
    }

    /// Sends GET_FEATURES without ever reading a reply, until the socket has stayed full for
    /// a second: the back end's replies have filled both socket buffers and it cannot send.
    func floodWithoutReading() throws -> Int {
        let request = littleEndian(VhostUserRequest.getFeatures.rawValue) + littleEndian(UInt32(1)) + littleEndian(UInt32(0))
        let batch = Array([[UInt8]](repeating: request, count: 64).joined())
        var sent = 0
        var fullSince: ContinuousClock.Instant?
        while true {
            let result = batch.withUnsafeBytes {
                Glibc.send(session.socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            }
            if result > 0 {
                sent += result
                fullSince = nil
            } else if result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                let since = fullSince ?? ContinuousClock.now
                fullSince = since
                if ContinuousClock.now - since > .seconds(1) { return sent }
                usleepMilliseconds(20)
            } else {
                throw SystemError(call: "send", errno: errno)
            }
        }
    }

    /// The next message from the back end, if one comes within `milliseconds`.
    func reply(milliseconds: Int = 5_000) throws -> (header: MessageHeader, payload: [UInt8], descriptors: [OwnedFileDescriptor])? {
        try session.receiveRawReply(timeoutMilliseconds: milliseconds)
    }

    // MARK: Descriptors (tracked by the leak check)

    func memfd(size: Int = 1 << 20) throws -> Int32 {
        let descriptor = try MemFD.create(name: "hostile", size: UInt64(size))
        files.track(descriptor, label: "memfd")
        return descriptor.rawValue
    }

    func eventfd(blocking: Bool = false) throws -> EventFD {
        let eventfd = try EventFD(nonBlocking: !blocking)
        files.track(eventfd.descriptor, label: "eventfd")
        return eventfd
    }

    /// A blocking eventfd whose counter is at its maximum: one more write would block.
    func fullBlockingEventFD() throws -> EventFD {
        let eventfd = try self.eventfd(blocking: true)
        var value: UInt64 = 0xFFFF_FFFF_FFFF_FFFE
        guard write(eventfd.rawValue, &value, 8) == 8 else { throw SystemError(call: "write(eventfd)", errno: errno) }
        return eventfd
    }

    /// One end of a socket pair (the other end is kept, and tracked, too).
    func socket() throws -> Int32 {
        let (one, other) = try UnixSocket.pair()
        files.track(one.descriptor, label: "socket")
        files.track(other.descriptor, label: "socket peer")
        return one.rawValue
    }

    /// The write end of a pipe whose buffer is full, in blocking mode.
    func fullBlockingPipe() throws -> Int32 {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw SystemError(call: "pipe", errno: errno) }
        let reader = OwnedFileDescriptor(adopting: ends[0])
        let writer = OwnedFileDescriptor(adopting: ends[1])
        _ = fcntl(reader.rawValue, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writer.rawValue, F_SETFD, FD_CLOEXEC)
        try writer.setNonBlocking(true)
        let chunk = [UInt8](repeating: 0, count: 4096)
        while chunk.withUnsafeBytes({ Glibc.write(writer.rawValue, $0.baseAddress, 4096) }) > 0 {}
        try writer.setNonBlocking(false)
        // Both ends share one pipefs inode, so only the end that is sent is tracked.
        files.keepAlive(reader)
        files.track(writer, label: "pipe writer")
        return writer.rawValue
    }

    // MARK: Guest pieces

    /// The guest's first region as the front end describes it, and its fd.
    var ramRegion: (region: MemoryRegionDescription, fd: Int32) {
        get throws { try guest.memoryRegions[0] }
    }

    /// SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR (addresses moved by the given offsets),
    /// SET_VRING_CALL, SET_VRING_ERR and SET_VRING_KICK for ring `index`, then
    /// SET_VRING_ENABLE(1).
    func startRing(_ index: Int, descriptorOffset: Int64 = 0, availableOffset: Int64 = 0, usedOffset: Int64 = 0,
                   call: Int32? = nil, error: Int32? = nil, kick: Int32? = nil) throws {
        let queue = guest.queues[index]
        let ring = UInt32(index)
        let addresses = queue.frontEndVirtualAddresses
        try session.send(.setVringNum(VringState(index: ring, num: UInt32(queue.queueSize))))
        try session.send(.setVringBase(VringState(index: ring, num: 0)))
        try session.send(.setVringAddr(VringAddress(
            index: ring, flags: [],
            descriptorTable: addresses.descriptorTable.rawValue &+ UInt64(bitPattern: descriptorOffset),
            usedRing: addresses.usedRing.rawValue &+ UInt64(bitPattern: usedOffset),
            availableRing: addresses.availableRing.rawValue &+ UInt64(bitPattern: availableOffset),
            logGuestAddress: 0)))
        try session.send(.setVringCall(VringFileIndex(index: ring, hasFileDescriptor: true)),
                         descriptors: [call ?? guest.calls[index].rawValue])
        try session.send(.setVringErr(VringFileIndex(index: ring, hasFileDescriptor: true)),
                         descriptors: [error ?? guest.errors[index].rawValue])
        try session.send(.setVringKick(VringFileIndex(index: ring, hasFileDescriptor: true)),
                         descriptors: [kick ?? guest.kicks[index].rawValue])
        try session.enableRing(index: ring, true)
    }

    /// Whether `condition` becomes true within `milliseconds` (the back end's workers pick up
    /// commands on their own threads).
    func eventually(milliseconds: Int = 5_000, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            usleepMilliseconds(5)
        }
        return true
    }

    /// References the back end holds to the file of `fd` (the test's own excluded).
    func backEndHolders(of fd: Int32) -> Int {
        guard let identity = DescriptorCensus.identity(of: fd) else { return -1 }
        if let child = backEnd as? ChildDaemon {
            return DescriptorCensus.holders(of: identity, process: "\(child.pid)")
        }
        return DescriptorCensus.holders(of: identity) - 1
    }
}

// MARK: Payloads, byte by byte (no validation: the point is to send what QEMU would not)

func u64(_ value: UInt64) -> [UInt8] { littleEndian(value) }

func vringState(_ index: UInt32, _ num: UInt32) -> [UInt8] { littleEndian(index) + littleEndian(num) }

/// SET_VRING_KICK/CALL/ERR: bits 0–7 index, bit 8 "no fd".
func vringFile(_ index: UInt64, noFD: Bool = false) -> [UInt8] { littleEndian(index | (noFD ? 0x100 : 0)) }

func vringAddress(_ index: UInt32, descriptorTable: UInt64 = 0x7f00_0000_0000, used: UInt64 = 0x7f00_0000_1000,
                  available: UInt64 = 0x7f00_0000_0800) -> [UInt8] {
    littleEndian(index) + littleEndian(UInt32(0)) + littleEndian(descriptorTable) + littleEndian(used)
        + littleEndian(available) + littleEndian(UInt64(0))
}

/// One memory region: guest_phys_addr, memory_size, userspace_addr, mmap_offset.
func regionBytes(gpa: UInt64, size: UInt64, uva: UInt64, offset: UInt64 = 0) -> [UInt8] {
    littleEndian(gpa) + littleEndian(size) + littleEndian(uva) + littleEndian(offset)
}

/// SET_MEM_TABLE: nregions, padding, regions.
func memoryTable(_ regions: [[UInt8]], count: UInt32? = nil) -> [UInt8] {
    littleEndian(count ?? UInt32(regions.count)) + littleEndian(UInt32(0)) + regions.flatMap { $0 }
}

/// ADD_MEM_REG / REM_MEM_REG: padding, region.
func singleRegion(_ region: [UInt8]) -> [UInt8] { littleEndian(UInt64(0)) + region }

func regionBytes(_ region: MemoryRegionDescription) -> [UInt8] {
    regionBytes(gpa: region.guestPhysicalAddress, size: region.size, uva: region.userAddress, offset: region.mmapOffset)
}

func configAccess(offset: UInt32, size: UInt32, flags: UInt32 = 0, _ bytes: [UInt8]? = nil) -> [UInt8] {
    littleEndian(offset) + littleEndian(size) + littleEndian(flags) + (bytes ?? [UInt8](repeating: 0, count: Int(size)))
}

/// sendmsg with any number of descriptors in one SCM_RIGHTS message (UnixSocket.send stops at
/// 32, the most the back end's control buffer holds; here the point is to exceed it).
func sendWithManyDescriptors(_ socket: Int32, _ bytes: [UInt8], _ descriptors: [Int32]) throws {
    let headerSize = MemoryLayout<cmsghdr>.size
    let dataLength = descriptors.count * MemoryLayout<Int32>.size
    let space = headerSize + ((dataLength + 7) & ~7)
    let control = UnsafeMutableRawBufferPointer.allocate(byteCount: space, alignment: 8)
    defer { control.deallocate() }
    control.initializeMemory(as: UInt8.self, repeating: 0)
    let header = control.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
    header.pointee.cmsg_len = headerSize + dataLength
    header.pointee.cmsg_level = SOL_SOCKET
    header.pointee.cmsg_type = 1  // SCM_RIGHTS
    for (index, fd) in descriptors.enumerated() {
        control.storeBytes(of: fd, toByteOffset: headerSize + index * 4, as: Int32.self)
    }
    var data = bytes
    let sent = data.withUnsafeMutableBytes { raw -> Int in
        var vector = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
        return withUnsafeMutablePointer(to: &vector) { vectorPointer in
            var message = msghdr()
            message.msg_iov = vectorPointer
            message.msg_iovlen = 1
            message.msg_control = control.baseAddress
            message.msg_controllen = space
            return sendmsg(socket, &message, Int32(MSG_NOSIGNAL))
        }
    }
    guard sent == bytes.count else { throw SystemError(call: "sendmsg(\(descriptors.count) fds)", errno: errno) }
}
