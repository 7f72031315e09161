#if canImport(Glibc)
import Glibc
#endif
import Logging
import VhostSystem

/// One qcow2 file of a chain: its validated header, and its metadata behind a lock shared by
/// the queue threads (lookups hold it for a cache hit; allocating writes for their whole
/// sequence).
final class Qcow2Image: @unchecked Sendable {
    // SAFETY (Sendable): immutable fields; the metadata is only touched through its lock.
    let path: String
    let header: Qcow2Header
    let file: HostFile
    let readOnly: Bool
    let metadata: Locked<Qcow2Metadata>
    /// The file's size when opened (what the tables may point into).
    let openedFileSize: UInt64

    /// Reads and checks the header, then the tables. Read-write opens refuse what could not be
    /// written safely: the corrupt or dirty bit, internal snapshots, extended L2 entries.
    init(file: HostFile, readOnly: Bool, l2CacheBytes: Int?, logger: Logger) throws(Qcow2Error) {
        path = file.path
        self.file = file
        self.readOnly = readOnly
        let fileSize = try file.size()
        // The cluster size is in the header: read what holds it, then the whole first cluster.
        let probe = AlignedBuffer(byteCount: AlignedBuffer.alignment)
        try file.read(into: probe.bytes, at: 0)
        let clusterBits = UnsafeRawPointer(probe.base).bigEndianUInt32(at: 20)
        let firstSize = Int(min(UInt64(1) << UInt64(min(max(clusterBits, 9), 21)), fileSize))
        let first = AlignedBuffer(byteCount: max(firstSize, AlignedBuffer.alignment))
        try file.read(into: first.bytes, at: 0)
        header = try Qcow2Header.parse(UnsafeRawBufferPointer(start: first.base, count: firstSize), fileSize: fileSize, path: path)
        if !readOnly {
            if header.incompatibleFeatures.contains(.corrupt) {
                throw .corrupt(path: path, reason: "the corrupt bit is set; serve it read-only, or repair it with qemu-img check -r all")
            }
            if header.incompatibleFeatures.contains(.dirty) {
                throw .corrupt(path: path, reason: "the dirty bit is set (lazy refcounts); run qemu-img check -r all first")
            }
            if header.snapshotCount > 0 {
                throw .unsupported(path: path, feature: "internal snapshots read-write (\(header.snapshotCount); read-only serving works)")
            }
            if header.incompatibleFeatures.contains(.extendedL2) {
                throw .unsupported(path: path, feature: "writing images with extended L2 entries (read-only serving works)")
            }
        }
        let cacheBytes = l2CacheBytes ?? Self.defaultL2CacheBytes(header)
        let metadata = try Qcow2Metadata(header: header, file: file, path: path, readOnly: readOnly,
                                         l2CacheBytes: cacheBytes, logger: logger)
        self.metadata = Locked(metadata)
        openedFileSize = metadata.validationLimit
        // Auto-clear features (bitmaps) describe data this implementation does not keep up to
        // date: the format asks a writer to clear them first.
        if !readOnly, header.version >= 3, header.autoclearFeatures != 0 {
            try metadata.updateHeader(at: Qcow2Header.autoclearFeaturesOffset, bigEndianBytes(UInt64(0)))
            logger.info("qcow2 auto-clear features cleared", metadata: [
                "image": "\(path)", "features": "0x\(String(header.autoclearFeatures, radix: 16))"])
        }
    }

    /// QEMU's default on Linux: enough L2 tables for the whole disk, at most 32 MiB.
    static func defaultL2CacheBytes(_ header: Qcow2Header) -> Int {
        let geometry = header.geometry
        let whole = geometry.l1EntriesNeeded(forSize: header.size) * geometry.clusterSize64
        return Int(min(whole, Qcow2Disk.maximumDefaultL2CacheBytes))
    }

    var virtualSize: UInt64 { header.size }

    func extent(at offset: UInt64, maximum: Int) throws(Qcow2Error) -> LayerExtent {
        try metadata.withLock { (state) throws(Qcow2Error) -> LayerExtent in try state.extent(at: offset, maximum: maximum) }
    }

    /// The extent at `offset` for a write straight to the file: nil while an allocation for one
    /// of its clusters is in flight (that write must order itself behind it: `Qcow2Request`).
    func extentForWritingInPlace(at offset: UInt64, maximum: Int) throws(Qcow2Error) -> LayerExtent? {
        try metadata.withLock { (state) throws(Qcow2Error) -> LayerExtent? in
            let extent = try state.extent(at: offset, maximum: maximum)
            return state.hasAllocationInFlight(offset: offset, length: extent.length) ? nil : extent
        }
    }
}
