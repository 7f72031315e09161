/// The sizes that follow from an image's cluster_bits and its L2 entry format, and the index
/// arithmetic of the two-level tables (L1/L2 for data, refcount table/blocks for refcounts).
struct ClusterGeometry: Sendable, Equatable {
    static let minimumClusterBits: UInt32 = 9
    static let maximumClusterBits: UInt32 = 21
    /// Extended L2 entries need clusters of 16 KiB or more (32 subclusters of at least 512 bytes).
    static let minimumExtendedClusterBits: UInt32 = 14
    static let subclustersPerCluster = 32
    /// Bits 9-55 of an L1, L2 or refcount table entry hold an offset.
    static let offsetMask: UInt64 = 0x00ff_ffff_ffff_fe00

    let clusterBits: UInt32
    let extendedL2: Bool
    let refcountOrder: UInt32

    var clusterSize: Int { 1 << Int(clusterBits) }
    var clusterSize64: UInt64 { 1 << UInt64(clusterBits) }
    /// Bytes per L2 entry: 8, or 16 with extended L2 entries.
    var l2EntrySize: Int { extendedL2 ? 16 : 8 }
    var l2Entries: Int { clusterSize / l2EntrySize }
    var subclusterSize: Int { extendedL2 ? clusterSize / Self.subclustersPerCluster : clusterSize }
    var refcountBits: Int { 1 << Int(refcountOrder) }
    var refcountBlockEntries: Int { clusterSize * 8 / refcountBits }
    /// Bytes of guest disk one L2 table maps.
    var bytesPerL2Table: UInt64 { UInt64(l2Entries) << UInt64(clusterBits) }

    func clusterIndex(_ offset: UInt64) -> UInt64 { offset >> UInt64(clusterBits) }
    func offsetInCluster(_ offset: UInt64) -> Int { Int(offset & (clusterSize64 - 1)) }
    func isClusterAligned(_ offset: UInt64) -> Bool { offset & (clusterSize64 - 1) == 0 }
    func l1Index(_ guestOffset: UInt64) -> UInt64 { guestOffset / bytesPerL2Table }
    func l2Index(_ guestOffset: UInt64) -> Int { Int(clusterIndex(guestOffset) % UInt64(l2Entries)) }

    /// L1 entries needed to map `size` bytes.
    func l1EntriesNeeded(forSize size: UInt64) -> UInt64 {
        size / bytesPerL2Table + (size % bytesPerL2Table == 0 ? 0 : 1)
    }

    /// Clusters needed for `bytes`, rounded up.
    func clusters(forBytes bytes: UInt64) -> UInt64 {
        (bytes >> UInt64(clusterBits)) + (bytes & (clusterSize64 - 1) == 0 ? 0 : 1)
    }

    /// Where a compressed cluster's descriptor splits: bits below hold the host offset, bits from
    /// here to 61 the count of additional 512-byte sectors.
    var compressedOffsetBits: UInt64 { 62 - (UInt64(clusterBits) - 8) }
}

/// One cluster's part of a guest range: the cluster's guest offset, where the part starts in
/// it, its length, and the bytes of the range before it.
struct ClusterPiece {
    let guestCluster: UInt64
    let inCluster: Int
    let length: Int
    let done: Int
}

/// A guest range split at cluster boundaries, in order.
struct ClusterPieces: Sequence, IteratorProtocol {
    let geometry: ClusterGeometry
    let offset: UInt64
    let length: Int
    private var done = 0

    init(_ geometry: ClusterGeometry, offset: UInt64, length: Int) {
        self.geometry = geometry
        self.offset = offset
        self.length = length
    }

    mutating func next() -> ClusterPiece? {
        guard done < length else { return nil }
        let position = offset + UInt64(done)
        let inCluster = geometry.offsetInCluster(position)
        let piece = ClusterPiece(guestCluster: position - UInt64(inCluster), inCluster: inCluster,
                                 length: Swift.min(length - done, geometry.clusterSize - inCluster), done: done)
        done += piece.length
        return piece
    }
}
