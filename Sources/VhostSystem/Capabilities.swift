#if canImport(Glibc)
import Glibc
#endif
import CCapNG

/// The process's capabilities, through libcap-ng: dropped once the daemon holds everything it
/// needs, so a compromise of the data path cannot use root's.
public enum Capabilities {
    public enum Holding: Equatable, Sendable {
        case none, partial, full
    }

    /// Clears every capability (effective, permitted, inheritable and, when allowed, that is
    /// with CAP_SETPCAP, the bounding set) and applies the change to this process.
    /// - Returns: what the process holds afterwards (`.none` on success).
    /// - Throws: when even the capability sets cannot be changed.
    @discardableResult
    public static func dropAll() throws(SystemError) -> Holding {
        capng_clear(CAPNG_SELECT_BOTH)
        if capng_apply(CAPNG_SELECT_BOTH) != 0 {
            // Without CAP_SETPCAP the bounding set cannot change; the capability sets still can.
            capng_clear(CAPNG_SELECT_CAPS)
            let result = capng_apply(CAPNG_SELECT_CAPS)
            if result != 0 { throw SystemError(call: "capng_apply", errno: errno) }
        }
        return current()
    }

    /// What the process holds now, as libcap-ng reads it from the kernel.
    public static func current() -> Holding {
        if capng_get_caps_process() != 0 { return .full }
        switch capng_have_capabilities(CAPNG_SELECT_CAPS) {
        case CAPNG_NONE: return .none
        case CAPNG_FULL: return .full
        default: return .partial
        }
    }
}
