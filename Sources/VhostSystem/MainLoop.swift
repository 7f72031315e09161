#if canImport(Glibc)
import Glibc
#endif
import CGLib

/// GLib's main loop, the control plane's event loop: descriptors and signals watched by
/// handlers that run on the thread calling `run`. The one place GLib is called from.
///
/// A handler is kept (retained) by its source and released when the source is removed, by
/// `remove` or by the handler asking not to be called again; handlers should capture their
/// owner unowned, since the owner keeps the loop.
public final class MainLoop: @unchecked Sendable {
    // SAFETY (Sendable): `quit` may be called from any thread (g_main_loop_quit is thread-safe);
    // everything else is used on the loop's thread.
    private let loop: OpaquePointer

    /// A watched descriptor or signal, to remove.
    public struct Source: Hashable, Sendable {
        fileprivate let id: guint
    }

    public init() {
        loop = g_main_loop_new(nil, 0)
    }

    deinit {
        g_main_loop_unref(loop)
    }

    /// Dispatches until `quit`.
    public func run() {
        g_main_loop_run(loop)
    }

    /// Makes `run` return (from any thread, or from a handler).
    public func quit() {
        g_main_loop_quit(loop)
    }

    /// Calls `handler` whenever `descriptor` is readable, hung up or in error, until it
    /// returns false (or the source is removed).
    public func watch(_ descriptor: Int32, _ handler: @escaping () -> Bool) -> Source {
        let box = Unmanaged.passRetained(Handler(handler)).toOpaque()
        let condition = GIOCondition(G_IO_IN.rawValue | G_IO_HUP.rawValue | G_IO_ERR.rawValue)
        let id = g_unix_fd_add_full(G_PRIORITY_DEFAULT, descriptor, condition, { _, _, data in
            guard let data else { return 0 }
            return Unmanaged<Handler>.fromOpaque(data).takeUnretainedValue().call() ? 1 : 0
        }, box, { data in
            if let data { Unmanaged<Handler>.fromOpaque(data).release() }
        })
        return Source(id: id)
    }

    /// Calls `handler` on the loop's thread each time `signal` arrives (GLib blocks it from
    /// interrupting anything else), until the source is removed.
    public func watchSignal(_ signal: Int32, _ handler: @escaping () -> Void) -> Source {
        let box = Unmanaged.passRetained(Handler { handler(); return true }).toOpaque()
        let id = g_unix_signal_add_full(G_PRIORITY_DEFAULT, signal, { data in
            guard let data else { return 0 }
            return Unmanaged<Handler>.fromOpaque(data).takeUnretainedValue().call() ? 1 : 0
        }, box, { data in
            if let data { Unmanaged<Handler>.fromOpaque(data).release() }
        })
        return Source(id: id)
    }

    /// Stops watching; the handler is released.
    public func remove(_ source: Source) {
        g_source_remove(source.id)
    }

    private final class Handler {
        let call: () -> Bool
        init(_ call: @escaping () -> Bool) { self.call = call }
    }
}
