#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// A Unix stream socket that carries bytes and passes file descriptors (SCM_RIGHTS).
public final class UnixSocket: Sendable {
    /// What one receive call returned: the bytes read, every descriptor that came with them (already
    /// owned, so dropping the value closes them) and whether the kernel had to cut the control data.
    public struct Received: Sendable {
        public var byteCount: Int
        public var descriptors: [OwnedFileDescriptor]
        /// MSG_CTRUNC: more descriptors were sent than fit; the kernel closed the excess.
        public var controlTruncated: Bool
    }

    public let descriptor: OwnedFileDescriptor

    public init(adopting descriptor: OwnedFileDescriptor) {
        self.descriptor = descriptor
    }

    public var rawValue: Int32 { descriptor.rawValue }

    /// Creates, binds and listens on `path`. An existing socket file at `path` is replaced only if
    /// nobody is accepting on it (a stale file from a dead daemon); a live one is an EADDRINUSE error.
    public static func listen(path: String, backlog: Int32 = 1) throws(SystemError) -> UnixSocket {
        var address = try makeAddress(path)
        let socket = try makeSocket()
        if access(path, F_OK) == 0 {
            if (try? connect(path: path)) != nil {
                throw SystemError(call: "bind(\(path)): another process is listening", errno: EADDRINUSE)
            }
            unlink(path)
        }
        _ = try retryingInterrupts("bind(\(path))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(socket.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        _ = try retryingInterrupts("listen") { Glibc.listen(socket.rawValue, backlog) }
        return socket
    }

    /// Connects to a listening socket at `path`.
    public static func connect(path: String) throws(SystemError) -> UnixSocket {
        var address = try makeAddress(path)
        let socket = try makeSocket()
        _ = try retryingInterrupts("connect(\(path))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(socket.rawValue, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        return socket
    }

    /// A connected pair (socketpair), for tests and in-process front ends.
    public static func pair() throws(SystemError) -> (UnixSocket, UnixSocket) {
        var fds: [Int32] = [-1, -1]
        _ = try retryingInterrupts("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (UnixSocket(adopting: OwnedFileDescriptor(adopting: fds[0])),
                UnixSocket(adopting: OwnedFileDescriptor(adopting: fds[1])))
    }

    /// Accepts one connection (close-on-exec). Returns nil if none is pending on a non-blocking socket.
    public func accept() throws(SystemError) -> UnixSocket? {
        let fd = try retryingInterruptsOrWouldBlock("accept4") {
            cvb_accept_cloexec(descriptor.rawValue)
        }
        return fd.map { UnixSocket(adopting: OwnedFileDescriptor(adopting: $0)) }
    }

    /// Sends all of `bytes` with `descriptors` attached to the first chunk.
    public func send(_ bytes: UnsafeRawBufferPointer, descriptors: [Int32] = []) throws(SystemError) {
        guard descriptors.count <= Int(CVB_MAX_FDS_PER_MESSAGE) else {
            throw SystemError(call: "sendmsg: too many descriptors", errno: EINVAL)
        }
        var offset = 0
        var pending = descriptors
        while offset < bytes.count || (bytes.isEmpty && offset == 0 && !pending.isEmpty) {
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            let sent = try retryingInterrupts("sendmsg") {
                pending.withUnsafeBufferPointer { fds in
                    cvb_send_with_fds(descriptor.rawValue, chunk.baseAddress, chunk.count, fds.baseAddress, Int32(fds.count))
                }
            }
            pending = []
            offset += Int(sent)
            if bytes.isEmpty { break }
        }
    }

    public func send(_ bytes: [UInt8], descriptors: [Int32] = []) throws(SystemError) {
        let copy = bytes
        let pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: copy.count, alignment: 8)
        defer { pointer.deallocate() }
        pointer.copyBytes(from: copy)
        try send(UnsafeRawBufferPointer(pointer), descriptors: descriptors)
    }

    /// One recvmsg of up to `buffer.count` bytes. `byteCount` 0 means the peer closed the connection.
    public func receive(into buffer: UnsafeMutableRawBufferPointer, dontWait: Bool = false) throws(SystemError) -> Received {
        var fds = [Int32](repeating: -1, count: Int(CVB_MAX_FDS_PER_MESSAGE))
        var count: Int32 = 0
        var messageFlags: Int32 = 0
        let received: Int
        do {
            received = try retryingInterrupts("recvmsg") {
                fds.withUnsafeMutableBufferPointer { fdBuffer in
                    cvb_recv_with_fds(descriptor.rawValue, buffer.baseAddress, buffer.count, fdBuffer.baseAddress,
                                      &count, &messageFlags, dontWait ? CVB_MSG_DONTWAIT : 0)
                }
            }
        }
        let owned = fds.prefix(Int(count)).map { OwnedFileDescriptor(adopting: $0) }
        return Received(byteCount: received, descriptors: owned,
                        controlTruncated: messageFlags & CVB_MSG_CTRUNC != 0)
    }

    /// Reads exactly `buffer.count` bytes, collecting descriptors that arrive on the way.
    /// Throws ECONNRESET if the peer closes before the buffer is full, and ETIMEDOUT once
    /// `deadline` has passed between two reads (a peer trickling bytes under the per-read
    /// timeout cannot hold the reader for longer).
    public func receiveExactly(into buffer: UnsafeMutableRawBufferPointer,
                               deadline: MonotonicDeadline? = nil) throws(SystemError) -> Received {
        var total = Received(byteCount: 0, descriptors: [], controlTruncated: false)
        while total.byteCount < buffer.count {
            if let deadline, deadline.hasPassed {
                throw SystemError(call: "recvmsg: message not complete before its deadline", errno: ETIMEDOUT)
            }
            let part = try receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[total.byteCount...]))
            total.descriptors += part.descriptors
            total.controlTruncated = total.controlTruncated || part.controlTruncated
            if part.byteCount == 0 {
                throw SystemError(call: "recvmsg: peer closed mid-message", errno: ECONNRESET)
            }
            total.byteCount += part.byteCount
        }
        return total
    }

    /// Bounds how long a blocking receive waits (SO_RCVTIMEO); EAGAIN is reported after that.
    public func setReceiveTimeout(milliseconds: Int) throws(SystemError) {
        var value = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = try retryingInterrupts("setsockopt(SO_RCVTIMEO)") {
            setsockopt(descriptor.rawValue, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Bounds how long a blocking send waits for room (SO_SNDTIMEO); EAGAIN is reported after that.
    public func setSendTimeout(milliseconds: Int) throws(SystemError) {
        var value = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        _ = try retryingInterrupts("setsockopt(SO_SNDTIMEO)") {
            setsockopt(descriptor.rawValue, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Shuts both directions down, waking any thread blocked on the socket.
    public func shutdown() {
        _ = Glibc.shutdown(descriptor.rawValue, Int32(SHUT_RDWR))
    }

    private static func makeSocket() throws(SystemError) -> UnixSocket {
        let fd = try retryingInterrupts("socket(AF_UNIX)") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        return UnixSocket(adopting: OwnedFileDescriptor(adopting: fd))
    }

    private static func makeAddress(_ path: String) throws(SystemError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw SystemError(call: "socket path too long or empty (\(bytes.count) bytes, limit \(capacity - 1))", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }
}
