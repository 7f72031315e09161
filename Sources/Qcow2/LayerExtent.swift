/// Where a run of guest bytes of one image layer is: the answer of a mapping lookup, at most one
/// cluster (or a run of contiguous clusters alike) long.
struct LayerExtent: Equatable {
    enum Kind: Equatable {
        /// In this layer's file at `host` (the run's first byte); `writable` when it may be
        /// written in place (standard clusters with refcount 1).
        case data(host: UInt64, writable: Bool)
        /// Reads as zeroes.
        case zeroes
        /// Not in this layer: look in the next one down.
        case unallocated
        /// Inside a compressed cluster: `byteCount` bytes at `host` hold it, the run starts
        /// `offsetInCluster` bytes into the decompressed cluster.
        case compressed(host: UInt64, byteCount: Int, offsetInCluster: Int)
    }

    var kind: Kind
    var length: Int
}
