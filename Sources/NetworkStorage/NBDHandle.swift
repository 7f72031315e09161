#if canImport(Glibc)
import Glibc
#endif
import CNBD
import VhostSystem

/// One libnbd handle (one connection to a server), closed with its owner. libnbd locks the
/// handle in every call; `NBDConnection` adds the lock that lets a handle be replaced.
final class NBDHandle {
    let raw: OpaquePointer

    init() throws(NetworkStorageError) {
        guard let raw = nbd_create() else { throw .nbdLibrary(Self.lastError) }
        self.raw = raw
    }

    deinit {
        // Commands still in flight are retired with an error (their callbacks run) first.
        nbd_close(raw)
    }

    /// libnbd's message for the last call that failed on this thread.
    static var lastError: String {
        nbd_get_error().map { String(cString: $0) } ?? "unknown error"
    }

    /// Connects to `uri` and completes the handshake within `timeoutMilliseconds`: the
    /// asynchronous connect driven by poll, so an unreachable host cannot stall the caller
    /// longer than that. Structured replies are asked for (libnbd's default).
    func connect(uri: String, timeoutMilliseconds: Int) throws(NetworkStorageError) {
        guard nbd_supports_uri(raw) == 1 else { throw .nbdLibrary("this libnbd cannot parse URIs") }
        // The URI is the daemon's own command line: it may name a TLS PSK file to read.
        _ = nbd_set_uri_allow_local_file(raw, true)
        guard nbd_aio_connect_uri(raw, uri) != -1 else {
            let reason = Self.lastError
            if nbd_get_errno() == EINVAL || reason.contains("URI") { throw .nbdInvalidURI(uri: uri, reason: reason) }
            throw .nbdCannotConnect(uri: uri, reason: reason)
        }
        let deadline = MonotonicDeadline(millisecondsFromNow: timeoutMilliseconds)
        while nbd_aio_is_ready(raw) != 1 {
            guard isAlive else { throw .nbdCannotConnect(uri: uri, reason: Self.lastError) }
            let now = MonotonicDeadline.now()
            guard now < deadline.nanoseconds else { throw .nbdConnectTimedOut(uri: uri, milliseconds: timeoutMilliseconds) }
            let direction = nbd_aio_get_direction(raw)
            var events: Int16 = 0
            if direction & UInt32(LIBNBD_AIO_DIRECTION_READ) != 0 { events |= Int16(POLLIN) }
            if direction & UInt32(LIBNBD_AIO_DIRECTION_WRITE) != 0 { events |= Int16(POLLOUT) }
            var descriptor = pollfd(fd: nbd_aio_get_fd(raw), events: events, revents: 0)
            let waitMilliseconds = Int32(clamping: (deadline.nanoseconds - now + 999_999) / 1_000_000)
            let ready = poll(&descriptor, 1, waitMilliseconds)
            if ready < 0, errno != EINTR { throw .nbdCannotConnect(uri: uri, reason: String(cString: strerror(errno))) }
            guard ready > 0 else { continue }
            if descriptor.revents & Int16(POLLOUT) != 0 { _ = nbd_aio_notify_write(raw) }
            if descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { _ = nbd_aio_notify_read(raw) }
        }
    }

    /// Neither dead (the connection failed) nor closed.
    var isAlive: Bool { nbd_aio_is_dead(raw) != 1 && nbd_aio_is_closed(raw) != 1 }

    var descriptor: Int32 { nbd_aio_get_fd(raw) }

    /// Ends the connection under libnbd: its next read finds the end of the stream, and it
    /// fails what is in flight (each command's callback with an error), as when a server dies.
    func dropConnection() {
        let socket = nbd_aio_get_fd(raw)
        if socket >= 0 { _ = Glibc.shutdown(socket, Int32(SHUT_RDWR)) }
    }

    /// Whether libnbd waits to read, to write, or both.
    var wantsToWrite: Bool { nbd_aio_get_direction(raw) & UInt32(LIBNBD_AIO_DIRECTION_WRITE) != 0 }

    /// Lets libnbd read replies (and write what waits) without blocking. With `confirmReadable`
    /// the socket is asked again first: libnbd told to read when nothing came starts waiting
    /// for a reply, and holds the commands issued meanwhile until one arrives, which never
    /// happens if none is due. A shared connection needs it (another queue may have read what
    /// made the socket readable).
    func notify(readable: Bool, writable: Bool, confirmReadable: Bool) {
        if writable { _ = nbd_aio_notify_write(raw) }
        guard readable else { return }
        if confirmReadable {
            var descriptor = pollfd(fd: nbd_aio_get_fd(raw), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { return }
        }
        _ = nbd_aio_notify_read(raw)
    }
}
