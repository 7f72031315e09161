/// One image of a chain, top or backing: a qcow2 file or a raw one.
enum DiskLayer {
    case qcow2(Qcow2Image)
    case raw(HostFile, size: UInt64)

    var file: HostFile {
        switch self {
        case .qcow2(let image): return image.file
        case .raw(let file, _): return file
        }
    }

    var virtualSize: UInt64 {
        switch self {
        case .qcow2(let image): return image.virtualSize
        case .raw(_, let size): return size
        }
    }

    var formatName: String {
        switch self {
        case .qcow2: return "qcow2"
        case .raw: return "raw"
        }
    }

    /// The extent at `offset` (inside this layer), at most `maximum` bytes.
    func extent(at offset: UInt64, maximum: Int) throws(Qcow2Error) -> LayerExtent {
        switch self {
        case .qcow2(let image): return try image.extent(at: offset, maximum: maximum)
        case .raw: return LayerExtent(kind: .data(host: offset, writable: false), length: maximum)
        }
    }

    /// Whether the file holds all of `length` bytes at `host` of an extent this layer mapped
    /// (reads past the end are zeroes, which only the qcow2 module's own reads supply). Tables
    /// point inside the file as it was opened, so only its last cluster can be partial; clusters
    /// allocated since are written or extended whole.
    func holdsWholly(host: UInt64, length: Int) -> Bool {
        switch self {
        case .qcow2(let image): return host >= image.openedFileSize || host + UInt64(length) <= image.openedFileSize
        case .raw: return true
        }
    }
}
