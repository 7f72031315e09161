/// The header extensions this implementation reads: each inside the area between the header and
/// the backing file's name, each of the known types at most once.
public struct Qcow2HeaderExtensions: Sendable, Equatable {
    enum Kind: UInt32 {
        case end = 0
        case backingFormat = 0xe279_2aca
        case featureNames = 0x6803_f857
        case bitmaps = 0x2385_2875
        case fullDiskEncryption = 0x0537_be77
        case dataFile = 0x4441_5441
    }

    /// The backing file's format as the image declares it ("raw", "qcow2", ...).
    public var backingFormat: String?
    /// The external data file's name (the data file bit is refused anyway).
    public var dataFileName: String?
    /// Whether a bitmaps extension is present (its data is not maintained here).
    public var hasBitmaps = false
    /// Extension types not known here, skipped as the format allows.
    public var unknownCount = 0

    static let maximumStringLength = 1023

    static func parse(_ area: UnsafeRawBufferPointer, geometry: ClusterGeometry, fileSize: UInt64,
                      path: String) throws(Qcow2Error) -> Qcow2HeaderExtensions {
        var result = Qcow2HeaderExtensions()
        var seen = Set<UInt32>()
        var position = 0
        func invalid(_ reason: String) -> Qcow2Error { .invalidHeader(path: path, reason: reason) }
        guard let base = area.baseAddress else { return result }
        while position + 8 <= area.count {
            let type = base.bigEndianUInt32(at: position)
            let length = Int(base.bigEndianUInt32(at: position + 4))
            if type == Kind.end.rawValue { return result }
            let dataStart = position + 8
            guard length <= area.count - dataStart else {
                throw invalid("header extension 0x\(String(type, radix: 16)) of \(length) bytes runs past the header area")
            }
            let data = UnsafeRawBufferPointer(start: base + dataStart, count: length)
            if let kind = Kind(rawValue: type) {
                guard seen.insert(type).inserted else { throw invalid("header extension 0x\(String(type, radix: 16)) appears twice") }
                switch kind {
                case .end:
                    return result
                case .backingFormat:
                    result.backingFormat = try string(data, what: "backing format", path: path)
                case .dataFile:
                    result.dataFileName = try string(data, what: "data file name", path: path)
                case .featureNames:
                    guard length % 48 == 0 else { throw invalid("the feature name table's length \(length) is not a multiple of 48") }
                case .bitmaps:
                    result.hasBitmaps = true
                case .fullDiskEncryption:
                    throw .unsupported(path: path, feature: "encryption (full disk encryption header)")
                }
            } else {
                result.unknownCount += 1
            }
            let padded = (length + 7) / 8 * 8
            guard padded <= area.count - dataStart else { throw invalid("header extension padding runs past the header area") }
            position = dataStart + padded
        }
        return result
    }

    private static func string(_ data: UnsafeRawBufferPointer, what: String, path: String) throws(Qcow2Error) -> String {
        guard !data.isEmpty, data.count <= maximumStringLength, !data.contains(0) else {
            throw .invalidHeader(path: path, reason: "the \(what) extension is empty, too long or contains a NUL byte")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
