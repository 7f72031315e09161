#if canImport(Glibc)
import Glibc
#endif
import Logging
import VhostSystem

/// Opens the backing files under a qcow2 image, read-only, as QEMU finds them: a relative name
/// is relative to the directory of the image that names it; the format is the one the image
/// declares (its backing format extension). Without a declaration the file is served as raw
/// only when it does not start like an image format qemu-img would pick instead (QEMU probes
/// there; probing here would let a guest's bytes choose host files).
enum BackingChain {
    /// Backing files below one image, at most (a chain longer is refused, as is a loop).
    static let maximumDepth = 256

    /// Magic numbers of formats qemu-img would pick over raw when probing.
    static let formatMagics: [(name: String, bytes: [UInt8])] = [
        ("qcow2", [0x51, 0x46, 0x49, 0xfb]), ("qed", Array("QED\0".utf8)), ("vmdk", Array("KDMV".utf8)),
        ("vdi", Array("<<< ".utf8)), ("vhdx", Array("vhdxfile".utf8)), ("vpc", Array("conectix".utf8)),
        ("luks", [0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]),
    ]

    /// The layers under `top` (its backing file, that one's, ...).
    static func open(under top: Qcow2Image, openFlags: Int32, l2CacheBytes: Int?, logger: Logger) throws(Qcow2Error) -> [DiskLayer] {
        var layers: [DiskLayer] = []
        var seen: Set<FileIdentity> = [try identity(of: top.file)]
        var current = top
        while let name = current.header.backingFileName {
            guard layers.count < maximumDepth else {
                throw .backing(path: top.path, reason: "the chain is deeper than \(maximumDepth) images")
            }
            let path = try resolve(name, relativeTo: current.path)
            let descriptor: OwnedFileDescriptor
            do {
                descriptor = try OwnedFileDescriptor.open(path, flags: O_RDONLY | openFlags)
            } catch {
                throw .backing(path: current.path, reason: "cannot open \(path): \(error)")
            }
            let file = HostFile(descriptor: descriptor, path: path,
                                directAlignment: openFlags & OwnedFileDescriptor.directIOFlag != 0 ? directAlignment(descriptor) : nil)
            guard seen.insert(try identity(of: file)).inserted else {
                throw .backing(path: current.path, reason: "\(path) is already in the chain (a loop)")
            }
            let format = try format(of: file, declared: current.header.extensions.backingFormat, by: current.path)
            switch format {
            case .raw:
                layers.append(.raw(file, size: try file.size()))
                return layers
            case .qcow2:
                let image = try Qcow2Image(file: file, readOnly: true, l2CacheBytes: l2CacheBytes, logger: logger)
                layers.append(.qcow2(image))
                current = image
            }
        }
        return layers
    }

    enum Format { case raw, qcow2 }

    static func format(of file: HostFile, declared: String?, by image: String) throws(Qcow2Error) -> Format {
        switch declared {
        case "raw": return .raw
        case "qcow2": return .qcow2
        case let other?:
            throw .backing(path: image, reason: "backing format \(other) of \(file.path) is not served (raw and qcow2 are)")
        case nil:
            let probe = AlignedBuffer(byteCount: AlignedBuffer.alignment)
            try file.read(into: probe.bytes, at: 0)
            for (name, magic) in formatMagics where probe.bytes.starts(with: magic) {
                throw .backing(path: image, reason: "\(file.path) looks like \(name) but the image does not declare its backing format; declare it with qemu-img rebase -u -b \(file.path) -F \(name) \(image)")
            }
            return .raw
        }
    }

    /// QEMU's rule: an absolute name as it is; a relative one joined to the naming image's
    /// directory. Names with a protocol prefix (json:, nbd:, ...) are refused.
    static func resolve(_ name: String, relativeTo image: String) throws(Qcow2Error) -> String {
        if let colon = name.firstIndex(of: ":"), !name[..<colon].contains("/") {
            throw .backing(path: image, reason: "backing file \(name) names a protocol; only files are served")
        }
        if name.hasPrefix("/") { return name }
        guard let slash = image.lastIndex(of: "/") else { return name }
        return String(image[...slash]) + name
    }

    struct FileIdentity: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    static func identity(of file: HostFile) throws(Qcow2Error) -> FileIdentity {
        var info = stat()
        guard fstat(file.rawValue, &info) == 0 else { throw .io(path: file.path, call: "fstat", errno: errno) }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// O_DIRECT's alignment (the system layer's probe; 4096 where the kernel says none).
    static func directAlignment(_ descriptor: OwnedFileDescriptor) -> (memory: Int, offset: Int) {
        descriptor.probedDirectIOAlignment(isBlockDevice: (try? descriptor.isBlockDevice()) ?? false) ?? (4096, 4096)
    }
}
