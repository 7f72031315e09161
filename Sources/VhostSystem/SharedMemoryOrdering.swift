import CVhostBridge

/// The C11 atomic accesses and fences that order accesses to memory shared with another
/// process (a guest's rings, an inflight area). Swift's own atomics cannot be placed on
/// memory it did not allocate, so these go through the C bridge.
public enum SharedMemoryOrdering {
    /// Load-acquire of a 16-bit field; the caller guarantees it is mapped and 2-byte aligned.
    @inline(__always)
    public static func loadAcquire(_ address: UnsafeRawPointer) -> UInt16 {
        cvb_load_acquire_u16(address)
    }

    /// Store-release of a 16-bit field; the caller guarantees it is mapped, writable and
    /// 2-byte aligned.
    @inline(__always)
    public static func storeRelease(_ value: UInt16, _ address: UnsafeMutableRawPointer) {
        cvb_store_release_u16(address, value)
    }

    /// Atomic OR of `bits` into one byte, relaxed: order it after earlier stores with
    /// `releaseFence`. The caller guarantees the byte is mapped and writable.
    @inline(__always)
    public static func orRelaxed(_ bits: UInt8, _ address: UnsafeMutableRawPointer) {
        cvb_or_relaxed_u8(address, bits)
    }

    /// A sequentially consistent fence.
    @inline(__always)
    public static func fullFence() {
        cvb_fence_seq_cst()
    }

    /// A release fence.
    @inline(__always)
    public static func releaseFence() {
        cvb_fence_release()
    }

    /// The CPU's spin-wait hint (PAUSE, YIELD), for a thread polling shared memory.
    @inline(__always)
    public static func spinWaitHint() {
        cvb_cpu_relax()
    }
}
