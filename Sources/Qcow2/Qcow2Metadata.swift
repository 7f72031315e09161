#if canImport(Glibc)
import Glibc
#endif
import Logging

/// The mutable state of one qcow2 file: its L1 table, refcount table, the table caches and the
/// allocation cursor. Only touched with its image's lock held (`Qcow2Image.metadata`).
///
/// Every table read from the file is validated before use: L1 and refcount table entries when
/// the image opens, an L2 table's entries when it is first loaded. Offsets must be aligned,
/// inside the file as it was opened, and must not point into other metadata, so a hostile
/// image cannot make a guest write land on the tables.
final class Qcow2Metadata {
    let path: String
    let file: HostFile
    let geometry: ClusterGeometry
    let version: UInt32
    let readOnly: Bool
    let hasBacking: Bool
    let compressionType: Qcow2Header.CompressionType
    let logger: Logger

    /// The L1 table as on disk (big-endian), rounded up to the file's alignment.
    let l1: AlignedBuffer
    let l1Entries: Int
    let l1Offset: UInt64
    /// The refcount table as on disk; replaced when it grows.
    var refcountTable: AlignedBuffer
    var refcountTableOffset: UInt64
    var refcountTableClusters: UInt64
    var refcountTableEntries: Int { refcountTable.count / 8 }

    let l2Cache: TableCache
    let refcountCache: TableCache
    /// The file's size as opened: offsets at or past it were not written by whoever made the
    /// image, so tables read from the file may not point there (`validationLimit`).
    let validationLimit: UInt64
    /// Bytes the file holds now (grows as clusters are allocated).
    var fileSize: UInt64
    /// Where the next cluster is allocated: past the end of the file and every cluster with a
    /// refcount. Freed clusters are not reused (docs/qcow2.md).
    var nextFreeCluster: UInt64
    /// Cluster indices holding metadata: the header, the L1 table, the refcount table, refcount
    /// blocks, L2 tables. A data cluster here means a corrupt image.
    var metadataClusters = Set<UInt64>()
    /// L2 tables whose entries were checked (on first load, or made here).
    var validatedL2 = Set<UInt64>()
    /// Set when metadata found while serving breaks the format: writes stop.
    var corruption: String?
    /// Allocations of asynchronous writes not finished yet, by guest cluster offset.
    var inFlight: [UInt64: InFlightAllocation] = [:]

    /// A cluster staged for copy-on-write; allocated on first use.
    private var stagingBuffer: AlignedBuffer?
    /// The last compressed cluster decompressed, by host offset.
    private var decompressed: (host: UInt64, buffer: AlignedBuffer)?
    private var compressedBytes: AlignedBuffer?

    static let l1ReservedMask: UInt64 = 0x7f00_0000_0000_01ff
    static let refcountTableReservedMask: UInt64 = 0x1ff

    init(header: Qcow2Header, file: HostFile, path: String, readOnly: Bool, l2CacheBytes: Int, logger: Logger) throws(Qcow2Error) {
        self.path = path
        self.file = file
        self.readOnly = readOnly
        self.logger = logger
        geometry = header.geometry
        version = header.version
        hasBacking = header.backingFileName != nil
        compressionType = header.compressionType
        let clusterSize = geometry.clusterSize
        guard clusterSize >= file.alignment else {
            throw .unsupported(path: path, feature: "\(clusterSize)-byte clusters with O_DIRECT on a file aligned to \(file.alignment) bytes (use --cache=writeback)")
        }
        l1Entries = Int(header.l1Size)
        l1Offset = header.l1TableOffset
        let l1Bytes = (l1Entries * 8 + file.alignment - 1) / file.alignment * file.alignment
        l1 = AlignedBuffer(byteCount: l1Bytes)
        try file.read(into: l1.bytes, at: l1Offset)
        refcountTableOffset = header.refcountTableOffset
        refcountTableClusters = UInt64(header.refcountTableClusters)
        refcountTable = AlignedBuffer(byteCount: Int(refcountTableClusters) * clusterSize)
        try file.read(into: refcountTable.bytes, at: refcountTableOffset)
        inFlight.reserveCapacity(Self.expectedInFlightAllocations)
        l2Cache = TableCache(clusterSize: clusterSize, capacity: max(2, l2CacheBytes / clusterSize))
        refcountCache = TableCache(clusterSize: clusterSize, capacity: 4)
        fileSize = try file.size()
        validationLimit = fileSize
        nextFreeCluster = geometry.clusters(forBytes: fileSize)
        try indexMetadata(header)
        try findNextFreeCluster()
    }

    func corrupt(_ reason: String) -> Qcow2Error { .corrupt(path: path, reason: reason) }

    /// Records the clusters metadata occupies, checking each L1 and refcount table entry.
    private func indexMetadata(_ header: Qcow2Header) throws(Qcow2Error) {
        metadataClusters.insert(0)
        let l1First = geometry.clusterIndex(l1Offset)
        for index in l1First..<(l1First + geometry.clusters(forBytes: UInt64(l1Entries) * 8)) { metadataClusters.insert(index) }
        let tableFirst = geometry.clusterIndex(refcountTableOffset)
        for index in tableFirst..<(tableFirst + refcountTableClusters) { metadataClusters.insert(index) }
        let fixed = metadataClusters
        for index in 0..<refcountTableEntries {
            let entry = refcountTable.base.bigEndianUInt64(at: index * 8)
            guard entry != 0 else { continue }
            guard entry & Self.refcountTableReservedMask == 0, geometry.isClusterAligned(entry),
                  entry + geometry.clusterSize64 <= geometry.clusters(forBytes: validationLimit) << UInt64(geometry.clusterBits)
            else { throw corrupt("refcount table entry \(index) (0x\(String(entry, radix: 16))) is unaligned, reserved bits set or outside the file") }
            guard metadataClusters.insert(geometry.clusterIndex(entry)).inserted else {
                throw corrupt("refcount block at 0x\(String(entry, radix: 16)) overlaps other metadata")
            }
        }
        for index in 0..<l1Entries {
            let entry = l1.base.bigEndianUInt64(at: index * 8)
            let offset = entry & ClusterGeometry.offsetMask
            guard entry & Self.l1ReservedMask == 0, geometry.isClusterAligned(offset) else {
                throw corrupt("L1 entry \(index) (0x\(String(entry, radix: 16))) has reserved bits set or an unaligned offset")
            }
            guard offset != 0 else { continue }
            guard offset + geometry.clusterSize64 <= geometry.clusters(forBytes: validationLimit) << UInt64(geometry.clusterBits) else {
                throw corrupt("L1 entry \(index) points past the end of the file (0x\(String(offset, radix: 16)))")
            }
            let cluster = geometry.clusterIndex(offset)
            guard !fixed.contains(cluster) else { throw corrupt("L2 table at 0x\(String(offset, radix: 16)) overlaps the header or a table") }
            // One L2 table per entry of the active L1 table, none on a refcount block.
            guard metadataClusters.insert(cluster).inserted else {
                throw corrupt("L2 table at 0x\(String(offset, radix: 16)) is shared or overlaps a refcount block")
            }
        }
    }

    /// The allocation cursor: past the file's end and the last cluster with a refcount.
    private func findNextFreeCluster() throws(Qcow2Error) {
        var tableIndex = refcountTableEntries - 1
        while tableIndex >= 0, refcountTable.base.bigEndianUInt64(at: tableIndex * 8) == 0 { tableIndex -= 1 }
        guard tableIndex >= 0 else { return }
        let blockOffset = refcountTable.base.bigEndianUInt64(at: tableIndex * 8)
        let block = try refcountBlock(at: blockOffset)
        var entry = geometry.refcountBlockEntries - 1
        while entry >= 0, refcountEntry(block, entry) == 0 { entry -= 1 }
        guard entry >= 0 else { return }
        let last = UInt64(tableIndex) * UInt64(geometry.refcountBlockEntries) + UInt64(entry)
        nextFreeCluster = max(nextFreeCluster, last + 1)
    }

    /// One cluster of scratch space for copy-on-write.
    var staging: AlignedBuffer {
        if let stagingBuffer { return stagingBuffer }
        let buffer = AlignedBuffer(byteCount: geometry.clusterSize)
        stagingBuffer = buffer
        return buffer
    }

    /// Writes the aligned pieces of `buffer` (whose first byte is at `bufferOffset` in the file)
    /// covering `count` changed bytes from `changed`.
    func writeThrough(_ buffer: AlignedBuffer, at bufferOffset: UInt64, changed: Int, count: Int) throws(Qcow2Error) {
        let alignment = file.alignment
        let start = changed / alignment * alignment
        let end = min(buffer.count, (changed + count + alignment - 1) / alignment * alignment)
        try file.write(UnsafeRawBufferPointer(start: buffer.base + start, count: end - start), at: bufferOffset + UInt64(start))
    }

    /// Rewrites `count` bytes of the header at `offset` (read-modify-write of its first block).
    func updateHeader(at offset: Int, _ bytes: [UInt8]) throws(Qcow2Error) {
        let block = AlignedBuffer(byteCount: file.alignment)
        try file.read(into: block.bytes, at: 0)
        for (index, byte) in bytes.enumerated() { block.bytes[offset + index] = byte }
        try file.write(UnsafeRawBufferPointer(block.bytes), at: 0)
    }

    /// Marks the image corrupt (in memory, and in the header when writable) and returns the error.
    func markCorrupt(_ reason: String) -> Qcow2Error {
        if corruption == nil {
            corruption = reason
            logger.error("qcow2 image is corrupt: writes stop", metadata: ["image": "\(path)", "reason": "\(reason)"])
            if !readOnly, version >= 3 {
                let bits = Qcow2Header.IncompatibleFeatures.corrupt.rawValue
                let current = (try? currentIncompatibleFeatures()) ?? 0
                try? updateHeader(at: Qcow2Header.incompatibleFeaturesOffset, bigEndianBytes(current | bits))
            }
        }
        return corrupt(reason)
    }

    private func currentIncompatibleFeatures() throws(Qcow2Error) -> UInt64 {
        let block = AlignedBuffer(byteCount: file.alignment)
        try file.read(into: block.bytes, at: 0)
        return UnsafeRawPointer(block.base).bigEndianUInt64(at: Qcow2Header.incompatibleFeaturesOffset)
    }

    /// The decompressed contents of the compressed cluster at `host` (`byteCount` bytes there).
    func decompressedCluster(host: UInt64, byteCount: Int) throws(Qcow2Error) -> AlignedBuffer {
        if let decompressed, decompressed.host == host { return decompressed.buffer }
        let alignment = UInt64(file.alignment)
        let start = host / alignment * alignment
        let end = (host + UInt64(byteCount) + alignment - 1) / alignment * alignment
        let span = Int(end - start)
        if compressedBytes == nil || compressedBytes.map({ $0.count < span }) == true {
            compressedBytes = AlignedBuffer(byteCount: span)
        }
        guard let source = compressedBytes else { throw corrupt("no memory for a compressed cluster") }
        try file.read(into: UnsafeMutableRawBufferPointer(start: source.base, count: span), at: start)
        let output = decompressed?.buffer ?? AlignedBuffer(byteCount: geometry.clusterSize)
        decompressed = nil
        let input = UnsafeRawBufferPointer(start: source.base + Int(host - start), count: byteCount)
        guard Decompressing.cluster(compressionType, input, into: output.bytes) else { throw corrupt("the compressed cluster at 0x\(String(host, radix: 16)) does not decompress") }
        decompressed = (host, output)
        return output
    }

    /// Forgets a decompressed cluster whose host clusters were freed.
    func forgetDecompressed() { decompressed = nil }

    /// Copies `length` bytes from `offsetInCluster` of the compressed cluster at `host`, when it
    /// is the one decompressed last, into the iovecs' data from `skipping` bytes in.
    func copyDecompressed(host: UInt64, offsetInCluster: Int, length: Int, into vectors: UnsafePointer<iovec>, count: Int,
                          skipping: Int) -> Bool {
        guard let decompressed, decompressed.host == host else { return false }
        IOVectors.copy(UnsafeRawPointer(decompressed.buffer.base + offsetInCluster), length: length, into: vectors, count: count,
                       skipping: skipping)
        return true
    }

    /// Keeps a copy of the cluster a request decompressed (`geometry.clusterSize` bytes) as the
    /// one decompressed last: small reads walking through it decompress it once.
    func keepDecompressed(host: UInt64, _ cluster: UnsafeRawPointer) {
        let buffer = decompressed?.buffer ?? AlignedBuffer(byteCount: geometry.clusterSize)
        buffer.base.copyMemory(from: cluster, byteCount: geometry.clusterSize)
        decompressed = (host, buffer)
    }
}

func bigEndianBytes(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) } }
func bigEndianBytes(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32($0))) } }
