/// A back end the comparison starts: our daemon or qemu-storage-daemon, each on a null disk
/// or an image, with the same number of queues.
public enum ComparedBackEnd: String, Sendable, Codable, CaseIterable {
    case ours
    case qemuStorageDaemon = "qsd"

    public var label: String {
        switch self {
        case .ours: "vhost-user-blk (Swift)"
        case .qemuStorageDaemon: "qemu-storage-daemon"
        }
    }

    /// What the back end serves.
    public enum Disk: Sendable, Equatable {
        /// A null disk of this many bytes (ours `--null-size`, q-s-d `null-co` with
        /// `read-zeroes=off`): no storage touched, buffers left as they are.
        case null(bytes: UInt64)
        /// An image file, through the page cache (q-s-d: `cache.direct=off`, its default aio).
        case image(path: String)
        /// An image file with O_DIRECT: ours `--cache=none`, q-s-d `cache.direct=on,aio=io_uring`.
        case directImage(path: String)
        /// A qcow2 image through the page cache: ours `--format=qcow2`, q-s-d its qcow2 driver
        /// over a file node, both with their defaults otherwise.
        case qcow2(path: String)
        /// A qcow2 image with O_DIRECT: ours `--format=qcow2 --cache=none`, q-s-d its qcow2
        /// driver over a file node with `cache.direct=on,aio=io_uring`.
        case directQcow2(path: String)
    }

    /// The command line: executable path, then arguments.
    public func arguments(executable: String, socket: String, disk: Disk, queues: Int) -> [String] {
        switch self {
        case .ours:
            let diskArgument: String = switch disk {
            case .null(let bytes): "--null-size=\(bytes)"
            case .image(let path): "--blk-file=\(path)"
            case .directImage(let path): "--blk-file=\(path) --cache=none"
            case .qcow2(let path): "--blk-file=\(path) --format=qcow2"
            case .directQcow2(let path): "--blk-file=\(path) --format=qcow2 --cache=none"
            }
            return [executable, "--socket-path=\(socket)"] + diskArgument.split(separator: " ").map(String.init)
                + ["--num-queues=\(queues)", "--log-level=error"]
        case .qemuStorageDaemon:
            let blockdev: String = switch disk {
            case .null(let bytes): "driver=null-co,node-name=disk,size=\(bytes),read-zeroes=off"
            case .image(let path): "driver=file,node-name=disk,filename=\(path),cache.direct=off"
            case .directImage(let path): "driver=file,node-name=disk,filename=\(path),cache.direct=on,aio=io_uring"
            case .qcow2(let path): "driver=qcow2,node-name=disk,file.driver=file,file.filename=\(path)"
            case .directQcow2(let path):
                "driver=qcow2,node-name=disk,file.driver=file,file.filename=\(path),file.cache.direct=on,file.aio=io_uring"
            }
            return [executable, "--blockdev", blockdev, "--export",
                    "type=vhost-user-blk,id=export0,node-name=disk,addr.type=unix,addr.path=\(socket),writable=on,num-queues=\(queues)"]
        }
    }
}
