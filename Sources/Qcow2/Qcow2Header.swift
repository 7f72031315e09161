/// A qcow2 header, parsed from the image's first cluster and validated field by field before
/// anything else is read: the version, cluster size and refcount width in range; the tables
/// aligned, inside the file and not overlapping the header; the header extensions inside the
/// first cluster and before the backing file's name.
public struct Qcow2Header: Sendable, Equatable {
    static let magic: UInt32 = 0x5146_49fb  // "QFI\xfb"
    static let version2Length = 72
    static let version3MinimumLength = 104
    /// The compression_type field's offset (present when header_length goes past it).
    static let compressionTypeOffset = 104
    /// QEMU's limits, which images from qemu-img respect: an L1 table of at most 32 MiB and a
    /// refcount table of at most 8 MiB.
    static let maximumL1Bytes: UInt64 = 32 << 20
    static let maximumRefcountTableBytes: UInt64 = 8 << 20
    static let maximumBackingNameLength: UInt32 = 1023
    /// Header fields' offsets that are ever rewritten.
    static let refcountTableFieldOffset = 48
    static let incompatibleFeaturesOffset = 72
    static let autoclearFeaturesOffset = 88

    public let version: UInt32
    public let backingFileOffset: UInt64
    public let backingFileSize: UInt32
    public let clusterBits: UInt32
    public let size: UInt64
    public let cryptMethod: UInt32
    public let l1Size: UInt32
    public let l1TableOffset: UInt64
    public let refcountTableOffset: UInt64
    public let refcountTableClusters: UInt32
    public let snapshotCount: UInt32
    public let snapshotsOffset: UInt64
    public let incompatibleFeatures: IncompatibleFeatures
    public let compatibleFeatures: UInt64
    public let autoclearFeatures: UInt64
    public let refcountOrder: UInt32
    public let headerLength: UInt32
    public let compressionType: CompressionType
    /// What the header extensions say (backing format, data file, ...).
    public let extensions: Qcow2HeaderExtensions
    /// The backing file's name as stored (not yet resolved against the image's directory).
    public let backingFileName: String?

    public struct IncompatibleFeatures: OptionSet, Sendable, Equatable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let dirty = IncompatibleFeatures(rawValue: 1 << 0)
        public static let corrupt = IncompatibleFeatures(rawValue: 1 << 1)
        public static let externalDataFile = IncompatibleFeatures(rawValue: 1 << 2)
        public static let compressionType = IncompatibleFeatures(rawValue: 1 << 3)
        public static let extendedL2 = IncompatibleFeatures(rawValue: 1 << 4)
        static let known: IncompatibleFeatures = [.dirty, .corrupt, .externalDataFile, .compressionType, .extendedL2]
    }

    public enum CompressionType: UInt8, Sendable, Equatable {
        case zlib = 0
        case zstd = 1
    }

    var geometry: ClusterGeometry {
        ClusterGeometry(clusterBits: clusterBits, extendedL2: incompatibleFeatures.contains(.extendedL2), refcountOrder: refcountOrder)
    }

    /// Parses and validates the header in `cluster` (the file's first bytes, up to one cluster or
    /// the file's end) of a file `fileSize` bytes long.
    static func parse(_ first: UnsafeRawBufferPointer, fileSize: UInt64, path: String) throws(Qcow2Error) -> Qcow2Header {
        guard first.count >= version2Length, let bytes = UnsafeRawPointer(first.baseAddress) else {
            if first.count >= 4, let base = first.baseAddress, base.bigEndianUInt32(at: 0) == magic {
                throw .truncated(path: path, what: "header")
            }
            throw .notQcow2(path: path)
        }
        func invalid(_ reason: String) -> Qcow2Error { .invalidHeader(path: path, reason: reason) }
        guard bytes.bigEndianUInt32(at: 0) == magic else { throw .notQcow2(path: path) }
        let version = bytes.bigEndianUInt32(at: 4)
        guard version == 2 || version == 3 else { throw .unsupported(path: path, feature: "version \(version) (2 and 3 are served)") }
        let clusterBits = bytes.bigEndianUInt32(at: 20)
        guard (ClusterGeometry.minimumClusterBits...ClusterGeometry.maximumClusterBits).contains(clusterBits) else {
            throw invalid("cluster_bits \(clusterBits) is outside 9...21 (512 B to 2 MiB clusters)")
        }
        let clusterSize = UInt64(1) << UInt64(clusterBits)
        guard UInt64(first.count) >= min(clusterSize, fileSize), fileSize >= UInt64(version2Length) else {
            throw .truncated(path: path, what: "header cluster")
        }
        var headerLength = UInt32(version2Length)
        var incompatible = IncompatibleFeatures()
        var compatible: UInt64 = 0
        var autoclear: UInt64 = 0
        var refcountOrder: UInt32 = 4
        var compression = CompressionType.zlib
        if version == 3 {
            guard first.count >= version3MinimumLength else { throw .truncated(path: path, what: "version 3 header") }
            headerLength = bytes.bigEndianUInt32(at: 100)
            guard headerLength >= UInt32(version3MinimumLength), headerLength % 8 == 0, UInt64(headerLength) <= clusterSize,
                  Int(headerLength) <= first.count else {
                throw invalid("header_length \(headerLength) is not a multiple of 8 between 104 and the cluster size")
            }
            incompatible = IncompatibleFeatures(rawValue: bytes.bigEndianUInt64(at: 72))
            compatible = bytes.bigEndianUInt64(at: 80)
            autoclear = bytes.bigEndianUInt64(at: 88)
            refcountOrder = bytes.bigEndianUInt32(at: 96)
            guard refcountOrder <= 6 else { throw invalid("refcount_order \(refcountOrder) exceeds 6 (64-bit refcounts)") }
            let unknown = incompatible.subtracting(.known)
            guard unknown.isEmpty else {
                throw .unsupported(path: path, feature: "incompatible feature bits 0x\(String(unknown.rawValue, radix: 16))")
            }
            let typeByte: UInt8 = Int(headerLength) > compressionTypeOffset ? bytes.load(fromByteOffset: compressionTypeOffset, as: UInt8.self) : 0
            if incompatible.contains(.compressionType) {
                guard typeByte != 0 else { throw invalid("the compression type bit is set but compression_type is zlib") }
            } else {
                guard typeByte == 0 else { throw invalid("compression_type \(typeByte) without the compression type bit") }
            }
            guard let type = CompressionType(rawValue: typeByte) else {
                throw .unsupported(path: path, feature: "compression type \(typeByte)")
            }
            compression = type
        }
        let geometry = ClusterGeometry(clusterBits: clusterBits, extendedL2: incompatible.contains(.extendedL2), refcountOrder: refcountOrder)
        if geometry.extendedL2, clusterBits < ClusterGeometry.minimumExtendedClusterBits {
            throw invalid("extended L2 entries need clusters of 16 KiB or more (cluster_bits \(clusterBits))")
        }
        let size = bytes.bigEndianUInt64(at: 24)
        let cryptMethod = bytes.bigEndianUInt32(at: 32)
        let l1Size = bytes.bigEndianUInt32(at: 36)
        let l1TableOffset = bytes.bigEndianUInt64(at: 40)
        let refcountTableOffset = bytes.bigEndianUInt64(at: 48)
        let refcountTableClusters = bytes.bigEndianUInt32(at: 56)
        let snapshotCount = bytes.bigEndianUInt32(at: 60)
        let snapshotsOffset = bytes.bigEndianUInt64(at: 64)
        let backingFileOffset = bytes.bigEndianUInt64(at: 8)
        let backingFileSize = bytes.bigEndianUInt32(at: 16)

        guard cryptMethod == 0 else {
            throw .unsupported(path: path, feature: cryptMethod == 1 ? "AES encryption" : cryptMethod == 2 ? "LUKS encryption" : "encryption method \(cryptMethod)")
        }
        guard !incompatible.contains(.externalDataFile) else { throw .unsupported(path: path, feature: "external data file") }
        // The virtual disk: sectors of 512 bytes, and within what an L1 table can map.
        guard size > 0, size % 512 == 0 else { throw invalid("virtual size \(size) is not a positive multiple of 512") }
        let l1Needed = geometry.l1EntriesNeeded(forSize: size)
        guard UInt64(l1Size) >= l1Needed else { throw invalid("l1_size \(l1Size) maps less than the virtual size (needs \(l1Needed))") }
        guard UInt64(l1Size) * 8 <= maximumL1Bytes else { throw invalid("l1_size \(l1Size) exceeds the 32 MiB L1 table limit") }
        let l1Bytes = UInt64(l1Size) * 8
        try checkTable("L1 table", offset: l1TableOffset, bytes: l1Bytes, clusterSize: clusterSize, fileSize: fileSize, path: path)
        guard refcountTableClusters > 0 else { throw invalid("refcount_table_clusters is 0") }
        let refcountTableBytes = UInt64(refcountTableClusters) << UInt64(clusterBits)
        guard refcountTableBytes <= maximumRefcountTableBytes else {
            throw invalid("refcount table of \(refcountTableClusters) clusters exceeds the 8 MiB limit")
        }
        try checkTable("refcount table", offset: refcountTableOffset, bytes: refcountTableBytes, clusterSize: clusterSize,
                       fileSize: fileSize, path: path)
        if l1Bytes > 0, l1TableOffset < refcountTableOffset + refcountTableBytes, refcountTableOffset < l1TableOffset + l1Bytes {
            throw invalid("the L1 table and the refcount table overlap")
        }
        if snapshotCount > 0 {
            guard geometry.isClusterAligned(snapshotsOffset), snapshotsOffset >= clusterSize, snapshotsOffset < fileSize else {
                throw invalid("snapshot table offset 0x\(String(snapshotsOffset, radix: 16)) is unaligned or outside the file")
            }
        }

        // The backing file's name lies inside the first cluster, after the header and extensions.
        var backingFileName: String?
        let headerCluster = Int(min(clusterSize, UInt64(first.count)))
        var extensionLimit = headerCluster
        if backingFileOffset != 0 {
            guard backingFileSize > 0, backingFileSize <= maximumBackingNameLength else {
                throw invalid("backing_file_size \(backingFileSize) is not between 1 and 1023")
            }
            guard backingFileOffset >= UInt64(headerLength), backingFileOffset <= UInt64(headerCluster),
                  UInt64(backingFileSize) <= UInt64(headerCluster) - backingFileOffset else {
                throw invalid("the backing file name lies outside the header cluster")
            }
            let name = UnsafeRawBufferPointer(start: bytes + Int(backingFileOffset), count: Int(backingFileSize))
            guard !name.contains(0) else { throw invalid("the backing file name contains a NUL byte") }
            backingFileName = String(decoding: name, as: UTF8.self)
            extensionLimit = Int(backingFileOffset)
        }
        let extensions = try Qcow2HeaderExtensions.parse(
            UnsafeRawBufferPointer(start: bytes + Int(headerLength), count: max(0, extensionLimit - Int(headerLength))),
            geometry: geometry, fileSize: fileSize, path: path)
        if extensions.dataFileName != nil, !incompatible.contains(.externalDataFile) {
            // Harmless alone, but it means a tool meant a data file: do not guess.
            throw .unsupported(path: path, feature: "external data file name without the data file bit")
        }
        return Qcow2Header(
            version: version, backingFileOffset: backingFileOffset, backingFileSize: backingFileSize, clusterBits: clusterBits,
            size: size, cryptMethod: cryptMethod, l1Size: l1Size, l1TableOffset: l1TableOffset,
            refcountTableOffset: refcountTableOffset, refcountTableClusters: refcountTableClusters, snapshotCount: snapshotCount,
            snapshotsOffset: snapshotsOffset, incompatibleFeatures: incompatible, compatibleFeatures: compatible,
            autoclearFeatures: autoclear, refcountOrder: refcountOrder, headerLength: headerLength, compressionType: compression,
            extensions: extensions, backingFileName: backingFileName)
    }

    /// A table: cluster-aligned, not in the header cluster, wholly inside the file.
    private static func checkTable(_ name: String, offset: UInt64, bytes: UInt64, clusterSize: UInt64, fileSize: UInt64,
                                   path: String) throws(Qcow2Error) {
        guard bytes > 0 else { return }
        guard offset % clusterSize == 0, offset >= clusterSize else {
            throw .invalidHeader(path: path, reason: "\(name) offset 0x\(String(offset, radix: 16)) is unaligned or inside the header cluster")
        }
        let (end, overflow) = offset.addingReportingOverflow(bytes)
        guard !overflow, end <= fileSize else { throw .truncated(path: path, what: name) }
    }
}
