import CCapNG

/// Dropping privileges with libcap-ng once the daemon holds everything it needs (the listening
/// socket and the disk image are open): from then on a compromise of the data path cannot use
/// root's capabilities.
public enum Privileges {
    public enum Holding: Equatable, Sendable {
        case none, partial, full
    }

    /// Clears every capability — effective, permitted, inheritable and, when allowed (we hold
    /// CAP_SETPCAP), the bounding set — and applies the change to this process.
    /// - Returns: what the process holds afterwards (`.none` on success).
    @discardableResult
    public static func dropAll() throws(BackendError) -> Holding {
        capng_clear(CAPNG_SELECT_BOTH)
        if capng_apply(CAPNG_SELECT_BOTH) != 0 {
            // Without CAP_SETPCAP the bounding set cannot change; the capability sets still can.
            capng_clear(CAPNG_SELECT_CAPS)
            if capng_apply(CAPNG_SELECT_CAPS) != 0 {
                throw .privilegeDropFailed
            }
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
