import Logging
import VhostSystem

/// A connection to the NBD server that survives the server: its handle is replaced when it
/// died (`reconnect`), and a generation number tells a command whether the handle it went out
/// on is still the one in use. Queues use it only through `withHandle`, under its lock: the
/// lock keeps a handle alive while in use, and it serialises the completion callbacks, which
/// libnbd runs inside the calls made under it (one queue's connection is never contended; a
/// connection shared by queues, for a server without multi-conn, is).
final class NBDConnection: @unchecked Sendable {
    private struct State {
        var handle: NBDHandle?
        var generation: UInt64 = 0
    }

    let uri: String
    /// Queues other than the one whose call ran a callback may own its command: pushes signal.
    let isShared: Bool
    private let state: Locked<State>

    init(uri: String, handle: NBDHandle?, isShared: Bool) {
        self.uri = uri
        self.isShared = isShared
        state = Locked(State(handle: handle))
    }

    /// Runs `body` with the handle if it is alive (nil otherwise) and its generation.
    func withHandle<Result>(_ body: (NBDHandle?, UInt64) -> Result) -> Result {
        state.withLock { state in
            let handle = state.handle.flatMap { $0.isAlive ? $0 : nil }
            return body(handle, state.generation)
        }
    }

    /// Whether a command issued on `generation` lost its connection (the handle died or was
    /// replaced since).
    func lostConnection(since generation: UInt64) -> Bool {
        withHandle { handle, current in handle == nil || current != generation }
    }

    /// Ends `generation`'s handle for good (the server said it is shutting down): its socket is
    /// shut down and libnbd told, so the handle is dead (what else was in flight on it fails as
    /// lost) and the next use reconnects, to the server that replaced it.
    func abandon(generation: UInt64) {
        withHandle { handle, current in
            guard let handle, current == generation else { return }
            handle.dropConnection()
            handle.notify(readable: true, writable: false, confirmReadable: false)
        }
    }

    /// Replaces a dead handle with a new connection within `timeoutMilliseconds`. Nil when the
    /// connection is alive afterwards, else why not.
    func reconnect(timeoutMilliseconds: Int) -> NetworkStorageError? {
        state.withLock { state -> NetworkStorageError? in
            if let handle = state.handle, handle.isAlive { return nil }
            // The old socket closes first: a server that takes one client at a time
            // (qemu-nbd's default) takes us back.
            state.handle = nil
            do {
                let handle = try NBDHandle()
                try handle.connect(uri: uri, timeoutMilliseconds: timeoutMilliseconds)
                state.handle = handle
                state.generation &+= 1
                return nil
            } catch let error as NetworkStorageError {
                return error
            } catch {
                return .nbdLibrary("\(error)")
            }
        }
    }
}
