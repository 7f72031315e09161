import VhostSystem

/// The two compression types qcow2 names, through the system layer's libraries.
enum Decompressing {
    /// qcow2's zlib clusters are raw deflate with a 4 KiB window.
    static func zlib(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        Decompression.inflateRaw(source, into: destination, windowBits: 12)
    }

    static func zstd(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        Decompression.zstd(source, into: destination)
    }

    /// A whole cluster (`destination` is one cluster long) of the image's compression type.
    static func cluster(_ type: Qcow2Header.CompressionType, _ source: UnsafeRawBufferPointer,
                        into destination: UnsafeMutableRawBufferPointer) -> Bool {
        switch type {
        case .zlib: return zlib(source, into: destination)
        case .zstd: return zstd(source, into: destination)
        }
    }
}
