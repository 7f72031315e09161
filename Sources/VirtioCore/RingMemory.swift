import VhostSystem

/// Little-endian loads and stores of ring fields in shared memory, and the barriers that order
/// them. Used by the device (`SplitQueue`) and by the test driver alike.
///
/// Every load copies the value out: nothing here hands out a reference into guest memory. The
/// other side may change any byte at any time; the values are validated after they are copied.
/// Callers pass pointers they have bounds-checked (ring layouts are validated once, descriptors
/// are read at checked indices).
public enum RingMemory {
    @inline(__always)
    public static func loadUInt16(_ base: UnsafeRawPointer, offset: Int) -> UInt16 {
        // SAFETY: the caller guarantees offset..<offset+2 is mapped; unaligned loads are allowed.
        UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    public static func loadUInt32(_ base: UnsafeRawPointer, offset: Int) -> UInt32 {
        // SAFETY: the caller guarantees offset..<offset+4 is mapped; unaligned loads are allowed.
        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    public static func loadUInt64(_ base: UnsafeRawPointer, offset: Int) -> UInt64 {
        // SAFETY: the caller guarantees offset..<offset+8 is mapped; unaligned loads are allowed.
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    public static func storeUInt16(_ value: UInt16, _ base: UnsafeMutableRawPointer, offset: Int) {
        // SAFETY: the caller guarantees offset..<offset+2 is mapped and writable; storeBytes
        // accepts unaligned addresses for trivial types.
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inline(__always)
    public static func storeUInt32(_ value: UInt32, _ base: UnsafeMutableRawPointer, offset: Int) {
        // SAFETY: as in storeUInt16, for 4 bytes.
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inline(__always)
    public static func storeUInt64(_ value: UInt64, _ base: UnsafeMutableRawPointer, offset: Int) {
        // SAFETY: as in storeUInt16, for 8 bytes.
        base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt64.self)
    }

    /// Load-acquire of a ring index: later loads (ring entries, descriptors, buffers) see what
    /// the other side wrote before its matching release store of the index.
    @inline(__always)
    public static func loadAcquireUInt16(_ base: UnsafeRawPointer, offset: Int) -> UInt16 {
        // SAFETY: the caller guarantees the field is mapped and 2-byte aligned (ring layouts are
        // checked for alignment of the host address), as a C11 atomic access requires.
        UInt16(littleEndian: SharedMemoryOrdering.loadAcquire(base + offset))
    }

    /// Store-release of a ring index: earlier stores (ring entries, buffer contents) become
    /// visible to the other side no later than the index.
    @inline(__always)
    public static func storeReleaseUInt16(_ value: UInt16, _ base: UnsafeMutableRawPointer, offset: Int) {
        // SAFETY: as in loadAcquireUInt16.
        SharedMemoryOrdering.storeRelease(value.littleEndian, base + offset)
    }

    /// A full (sequentially consistent) fence: orders earlier stores before later loads, which
    /// acquire/release alone never do. Needed wherever one side publishes something and then
    /// reads what the other side published, to decide whether to notify or to sleep.
    @inline(__always)
    public static func fullFence() {
        SharedMemoryOrdering.fullFence()
    }

    /// A release fence: earlier stores are not reordered after later ones (by the compiler or
    /// the CPU). Orders the steps of the inflight log so that a crash between two of them
    /// leaves one of the states `SplitInflightRegion.recover` repairs.
    @inline(__always)
    public static func releaseFence() {
        SharedMemoryOrdering.releaseFence()
    }
}
