/// One 64-bit entry of an `IOPageTable`, in the layout of Intel VT-d's second-level paging
/// entries (VT-d specification, "Second-Level Paging Entries"):
///
/// | bits  | meaning |
/// |-------|---------|
/// | 0     | R: reads allowed (with W, "present": an entry with neither is empty) |
/// | 1     | W: writes allowed |
/// | 7     | PS: in a level-3 or level-2 entry, the entry is a 1 GiB or 2 MiB leaf |
/// | 12–51 | the frame: for a leaf, the page-aligned front-end user address it maps to; for a table pointer, the table's place in the pool (index × 4096) |
///
/// Level-1 entries are always 4 KiB leaves (bit 7 unused), level-4 entries always point to
/// tables. Table pointers carry R and W, as VT-d's non-leaf entries do, so that the permission
/// is decided by the leaf alone. The other bits are zero.
public struct IOPageTableEntry: Equatable, Sendable {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Bit 0 (R).
    public static let readBit: UInt64 = 1 << 0
    /// Bit 1 (W).
    public static let writeBit: UInt64 = 1 << 1
    /// Bit 7 (PS).
    public static let leafBit: UInt64 = 1 << 7
    /// Bits 12–51: VT-d's 52-bit host address width (HAW) gives the frame field 40 bits.
    public static let frameMask: UInt64 = 0x000F_FFFF_FFFF_F000
    /// The first address the frame field cannot hold (2^52).
    public static let frameLimit: UInt64 = 1 << 52

    /// A leaf mapping to `frame` (page-aligned, below `frameLimit`) with `permission` (not empty).
    /// `sizeBit` is true for 1 GiB and 2 MiB leaves.
    init(leafFrame frame: UInt64, permission: IOMMUPermission, sizeBit: Bool) {
        var raw = frame & Self.frameMask
        if permission.contains(.read) { raw |= Self.readBit }
        if permission.contains(.write) { raw |= Self.writeBit }
        if sizeBit { raw |= Self.leafBit }
        rawValue = raw
    }

    /// A pointer to table `index` of the pool.
    init(table index: Int) {
        rawValue = (UInt64(index) << 12) | Self.readBit | Self.writeBit
    }

    /// R or W is set.
    public var isPresent: Bool { rawValue & (Self.readBit | Self.writeBit) != 0 }

    /// PS is set (meaningful at levels 3 and 2 only).
    public var hasLeafBit: Bool { rawValue & Self.leafBit != 0 }

    /// The frame field: a leaf's user address, or a table pointer's place in the pool.
    public var frame: UInt64 { rawValue & Self.frameMask }

    /// The permission bits of a leaf.
    public var permission: IOMMUPermission { Self.permissions[Int(truncatingIfNeeded: rawValue & 3)] }

    /// The permission of R/W bit patterns 0–3 (R is bit 0, W bit 1).
    static let permissions: [IOMMUPermission] = [[], .read, .write, .readWrite]

    /// The pool index of the table a pointer entry names.
    var tableIndex: Int { Int(truncatingIfNeeded: rawValue >> 12 & (Self.frameMask >> 12)) }
}
