/// What an L2 entry says about one guest cluster (or, with extended L2 entries, about a run of
/// its subclusters), decoded and checked.
enum ClusterMapping: Equatable {
    /// Not allocated here: read from the backing file, or zeroes without one.
    case unallocated
    /// Reads as zeroes; `preallocated` is the host cluster kept for it, if any.
    case zero(preallocated: UInt64?)
    /// At `host` in the image file; `copied` when its refcount is exactly one (writable in place).
    case data(host: UInt64, copied: Bool)
    /// Compressed: `byteCount` bytes at `host` (not aligned) hold the whole cluster.
    case compressed(host: UInt64, byteCount: Int)

    static let copiedFlag: UInt64 = 1 << 63
    static let compressedFlag: UInt64 = 1 << 62
    static let zeroFlag: UInt64 = 1
    /// Bits 1-8 and 56-61 of a standard descriptor are reserved.
    static let standardReservedMask: UInt64 = 0x3f00_0000_0000_01fe

    /// Decodes a standard (8-byte) entry. Nil when the entry breaks the format (the image is
    /// corrupt): reserved bits set, an unaligned offset, the zero flag where it cannot be.
    static func decode(_ entry: UInt64, geometry: ClusterGeometry, version: UInt32) -> ClusterMapping? {
        if entry & compressedFlag != 0 {
            guard entry & copiedFlag == 0 else { return nil }
            let offsetBits = geometry.compressedOffsetBits
            let host = entry & ((1 << offsetBits) - 1)
            let sectors = (entry & ~(copiedFlag | compressedFlag)) >> offsetBits
            // The sectors after the one holding the offset, minus where the data starts in it.
            let byteCount = Int((sectors + 1) * 512) - Int(host & 511)
            guard host != 0, byteCount > 0 else { return nil }
            return .compressed(host: host, byteCount: byteCount)
        }
        guard entry & standardReservedMask == 0 else { return nil }
        let zero = entry & zeroFlag != 0
        if zero, version < 3 || geometry.extendedL2 { return nil }
        let host = entry & ClusterGeometry.offsetMask
        guard geometry.isClusterAligned(host) else { return nil }
        if host == 0 {
            // Offset 0 with the copied bit means an external data file, refused at open.
            guard entry & copiedFlag == 0 else { return nil }
            return zero ? .zero(preallocated: nil) : .unallocated
        }
        if zero { return .zero(preallocated: host) }
        return .data(host: host, copied: entry & copiedFlag != 0)
    }

    /// A zero cluster keeping a host cluster that only it uses (written in place on copy-on-write).
    func hasPreallocatedCopiedCluster(_ entry: UInt64) -> Bool {
        if case .zero(preallocated: _?) = self { return entry & Self.copiedFlag != 0 }
        return false
    }

    var isCompressed: Bool {
        if case .compressed = self { return true }
        return false
    }

    /// The host clusters this mapping holds a reference to (freed when it is replaced).
    func referencedClusters(geometry: ClusterGeometry) -> ClosedRange<UInt64>? {
        switch self {
        case .unallocated, .zero(preallocated: nil):
            return nil
        case .zero(preallocated: let host?), .data(let host, _):
            let index = geometry.clusterIndex(host)
            return index...index
        case .compressed(let host, let byteCount):
            return geometry.clusterIndex(host)...geometry.clusterIndex(host + UInt64(byteCount) - 1)
        }
    }
}
