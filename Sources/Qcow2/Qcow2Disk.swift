#if canImport(Glibc)
import Glibc
#endif
import Logging
import VhostSystem

/// A qcow2 image and its backing chain, as the device sees it: a disk of `virtualSize` bytes.
///
/// Requests whose bytes lie in one run of the image file (the common case: an allocated
/// cluster) are asked for with `directMapping` and go to the caller's I/O engine unchanged;
/// everything else (zero and unallocated clusters, compressed clusters, requests spanning
/// several runs, writes that allocate) is served here, synchronously, by `read` and `write`.
/// Every method is safe to call from several queue threads at once.
public final class Qcow2Disk: @unchecked Sendable {
    // SAFETY (Sendable): immutable fields; each image's metadata is behind its own lock.
    /// QEMU's largest default L2 cache on Linux (`l2-cache-size`).
    public static let maximumDefaultL2CacheBytes: UInt64 = 32 << 20

    let top: Qcow2Image
    /// The top image first, then its backing files.
    let layers: [DiskLayer]
    public let virtualSize: UInt64
    public let readOnly: Bool

    /// Opens the qcow2 image in `descriptor` (opened by the caller with the cache mode's flags,
    /// O_DIRECT's alignment `directAlignment` when it bypasses the page cache) and its backing
    /// chain (read-only, with `backingOpenFlags` added).
    /// - Throws: `Qcow2Error` naming what in which file is wrong or not supported.
    public init(descriptor: OwnedFileDescriptor, path: String, readOnly: Bool, directAlignment: (memory: Int, offset: Int)?,
                backingOpenFlags: Int32, l2CacheBytes: Int?, logger: Logger) throws(Qcow2Error) {
        let file = HostFile(descriptor: descriptor, path: path, directAlignment: directAlignment)
        top = try Qcow2Image(file: file, readOnly: readOnly, l2CacheBytes: l2CacheBytes, logger: logger)
        layers = [.qcow2(top)] + (try BackingChain.open(under: top, openFlags: backingOpenFlags, l2CacheBytes: l2CacheBytes, logger: logger))
        virtualSize = top.virtualSize
        self.readOnly = readOnly
        var largest = 0
        var alignment = AlignedBuffer.alignment
        for layer in layers {
            alignment = max(alignment, layer.file.alignment)
            if case .qcow2(let image) = layer { largest = max(largest, image.header.geometry.clusterSize) }
        }
        // A compressed cluster's bytes: at most a cluster and a sector, widened to the alignment.
        stagingSizes = (input: largest + 512 + 2 * alignment, output: largest)
    }

    /// Sizes of a `CompressedStaging`, for the largest cluster of the chain.
    let stagingSizes: (input: Int, output: Int)
    private let stagingPool = Locked(StagingPool())
    /// Staging for compressed reads through the engine is made up to this many bytes; past it
    /// such reads are served synchronously.
    static let stagingBudgetBytes = 64 << 20

    private struct StagingPool {
        var free: [CompressedStaging] = []
        var made = 0
    }

    /// Scratch for a compressed cluster read through the engine, or nil when the budget is spent.
    func borrowStaging() -> CompressedStaging? {
        let sizes = stagingSizes
        return stagingPool.withLock { pool -> CompressedStaging? in
            if let staging = pool.free.popLast() { return staging }
            guard (pool.made + 1) * (sizes.input + sizes.output) <= Self.stagingBudgetBytes else { return nil }
            pool.made += 1
            pool.free.reserveCapacity(pool.made)
            return CompressedStaging(inputBytes: sizes.input, outputBytes: sizes.output)
        }
    }

    func giveBack(_ staging: CompressedStaging) {
        stagingPool.withLock { $0.free.append(staging) }
    }

    /// The chain, top first, as "path (format)" (for the daemon's log).
    public var chain: [String] { layers.map { "\($0.file.path) (\($0.formatName))" } }

    /// The qcow2 header's version and cluster size (for the daemon's log).
    public var version: UInt32 { top.header.version }
    public var clusterSize: Int { top.header.geometry.clusterSize }

    /// Where `length` bytes at guest `offset` lie in one file, when they do and can be moved
    /// there directly: (descriptor, offset in it). Writes only to clusters written in place.
    public func directMapping(offset: UInt64, length: Int, forWrite: Bool) -> (descriptor: Int32, offset: UInt64)? {
        guard length > 0 else { return nil }
        if forWrite {
            guard !readOnly, let extent = try? top.extentForWritingInPlace(at: offset, maximum: length),
                  extent.length == length,
                  case .data(let host, writable: true) = extent.kind else { return nil }
            return (top.file.rawValue, host)
        }
        guard let (layer, extent) = try? resolve(offset, maximum: length, from: 0), extent.length == length,
              case .data(let host, _) = extent.kind else { return nil }
        let file = layers[layer].file
        // The caller checks alignment against the top file's; a backing file must agree.
        guard file.alignment == top.file.alignment, file.memoryAlignment == top.file.memoryAlignment,
              layers[layer].holdsWholly(host: host, length: length) else { return nil }
        return (file.rawValue, host)
    }

    /// Reads `length` bytes at guest `offset` into `count` iovecs. Returns 0 or an errno.
    public func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Int32 {
        errno(of: { () throws(Qcow2Error) in try read(vectors, count: count, offset: offset, length: length, from: 0) })
    }

    /// Writes `length` bytes from `count` iovecs at guest `offset`. Returns 0 or an errno.
    public func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Int32 {
        errno(of: { () throws(Qcow2Error) in try write(.vectors(vectors, count: count), offset: offset, length: length) })
    }

    /// Makes a range read as zeroes: whole clusters through their L2 entries (freed with
    /// `unmap`), the parts of clusters at either end by writing zeroes. Returns 0 or an errno.
    public func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool) -> Int32 {
        errno(of: { () throws(Qcow2Error) in
            try forWholeClusters(offset: offset, length: length) { (start, clusters) throws(Qcow2Error) in
                let zeroed = try top.metadata.withLock { (state) throws(Qcow2Error) -> Bool in
                    try state.zeroClusters(at: start, count: clusters, deallocate: unmap)
                }
                if !zeroed { try write(.zeroes, offset: start, length: clusters * top.header.geometry.clusterSize) }
            } partial: { (start, bytes) throws(Qcow2Error) in
                try write(.zeroes, offset: start, length: bytes)
            }
        })
    }

    /// Frees whole clusters in a range (they then read as zeroes); parts of clusters are left
    /// as they are, as a discard may. Returns 0 or an errno.
    public func discard(offset: UInt64, length: UInt64) -> Int32 {
        errno(of: { () throws(Qcow2Error) in
            try forWholeClusters(offset: offset, length: length) { (start, clusters) throws(Qcow2Error) in
                _ = try top.metadata.withLock { (state) throws(Qcow2Error) -> Bool in
                    try state.zeroClusters(at: start, count: clusters, deallocate: true)
                }
            } partial: { _, _ throws(Qcow2Error) in }
        })
    }

    /// fdatasync of the image file (metadata is written through, so this makes it all stable).
    public func flush() -> Int32 {
        errno(of: { () throws(Qcow2Error) in try top.metadata.withLock { (state) throws(Qcow2Error) in try state.synchronize() } })
    }

    private func errno(of body: () throws(Qcow2Error) -> Void) -> Int32 {
        do {
            try body()
            return 0
        } catch {
            return error.errno
        }
    }

    /// Splits a range into its whole clusters and the partial pieces at either end.
    private func forWholeClusters(offset: UInt64, length: UInt64, whole: (UInt64, Int) throws(Qcow2Error) -> Void,
                                  partial: (UInt64, Int) throws(Qcow2Error) -> Void) throws(Qcow2Error) {
        let clusterSize = top.header.geometry.clusterSize64
        let end = offset + length
        let firstWhole = (offset + clusterSize - 1) / clusterSize * clusterSize
        let lastWhole = end / clusterSize * clusterSize
        guard firstWhole < lastWhole else {
            if length > 0 { try partial(offset, Int(length)) }
            return
        }
        if firstWhole > offset { try partial(offset, Int(firstWhole - offset)) }
        try whole(firstWhole, Int((lastWhole - firstWhole) / clusterSize))
        if end > lastWhole { try partial(lastWhole, Int(end - lastWhole)) }
    }

    /// The first extent at `offset` looking down the chain from layer `first`: (layer, extent).
    /// Past a backing file's end the disk reads as zeroes.
    func resolve(_ offset: UInt64, maximum: Int, from first: Int) throws(Qcow2Error) -> (Int, LayerExtent) {
        var limit = maximum
        var index = first
        while index < layers.count {
            let layer = layers[index]
            guard offset < layer.virtualSize else { return (index, LayerExtent(kind: .zeroes, length: limit)) }
            limit = min(limit, Int(clamping: layer.virtualSize - offset))
            let extent = try layer.extent(at: offset, maximum: limit)
            guard extent.kind == .unallocated else { return (index, extent) }
            limit = extent.length
            index += 1
        }
        return (layers.count - 1, LayerExtent(kind: .zeroes, length: limit))
    }

    /// Reads through the chain from layer `first`.
    func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int, from first: Int) throws(Qcow2Error) {
        var done = 0
        while done < length {
            let (layer, extent) = try resolve(offset + UInt64(done), maximum: length - done, from: first)
            switch extent.kind {
            case .data(let host, _):
                let file = layers[layer].file
                let result = withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(count, 1)) { slice -> Int32 in
                    guard let used = IOVectors.slice(vectors, count: count, skipping: done, length: extent.length, into: slice),
                          let base = slice.baseAddress else { return EINVAL }
                    return file.transferData(base, count: used, offset: host, length: extent.length, write: false)
                }
                guard result == 0 else { throw .io(path: file.path, call: "pread", errno: result) }
            case .zeroes, .unallocated:
                IOVectors.zero(vectors, count: count, skipping: done, length: extent.length)
            case .compressed(let host, let byteCount, let offsetInCluster):
                guard case .qcow2(let image) = layers[layer] else { throw .io(path: top.path, call: "read", errno: EIO) }
                try image.metadata.withLock { (state) throws(Qcow2Error) in
                    let cluster = try state.decompressedCluster(host: host, byteCount: byteCount)
                    IOVectors.copy(UnsafeRawPointer(cluster.base + offsetInCluster), length: extent.length,
                                   into: vectors, count: count, skipping: done)
                }
            }
            done += extent.length
        }
    }

    private func write(_ source: WriteSource, offset: UInt64, length: Int) throws(Qcow2Error) {
        try top.metadata.withLock { (state) throws(Qcow2Error) in
            try state.write(source, offset: offset, length: length) { (guestOffset, buffer) throws(Qcow2Error) in
                var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
                try read(&vector, count: 1, offset: guestOffset, length: buffer.count, from: 1)
            }
        }
    }
}
