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

    /// Bytes the layer's file holds (reads past them are zeroes, not fast-path material).
    func fileSize() -> UInt64 {
        switch self {
        case .qcow2(let image): return image.metadata.withLock { $0.fileSize }
        case .raw(_, let size): return size
        }
    }
}
