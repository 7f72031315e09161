#if canImport(Glibc)
import Glibc
#endif
import VhostSystem

/// The descriptors a fuzzed front end can attach to its messages, made afresh for each input
/// (so nothing one input does to them leaks into the next): guest RAM as QEMU shares it (a
/// 2 MiB memfd), a memfd smaller than a page-aligned region, a 64 KiB memfd sealed against
/// resizing (as an inflight area must be), an eventfd, a pipe, a socket
/// (whose peer absorbs back-end requests) and /dev/null.
struct DispatchFuzzFiles {
    static let guestRAMSize: UInt64 = 2 << 20
    static let kindCount = 7

    let guestRAM: OwnedFileDescriptor
    let smallMemfd: OwnedFileDescriptor
    let sealedMemfd: OwnedFileDescriptor
    let eventfd: EventFD
    let pipeReadEnd: OwnedFileDescriptor
    let pipeWriteEnd: OwnedFileDescriptor
    let socket: UnixSocket
    let socketPeer: UnixSocket
    let devNull: OwnedFileDescriptor

    init() throws(SystemError) {
        guestRAM = try MemFD.create(name: "fuzz-guest-ram", size: Self.guestRAMSize, allowSealing: true)
        smallMemfd = try MemFD.create(name: "fuzz-small", size: 100)
        sealedMemfd = try MemFD.create(name: "fuzz-sealed", size: 64 << 10, allowSealing: true)
        try MemFD.sealSize(sealedMemfd)
        eventfd = try EventFD()
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw SystemError(call: "pipe2", errno: errno) }
        pipeReadEnd = OwnedFileDescriptor(adopting: ends[0])
        pipeWriteEnd = OwnedFileDescriptor(adopting: ends[1])
        (socket, socketPeer) = try UnixSocket.pair()
        devNull = try OwnedFileDescriptor.open("/dev/null", flags: O_RDWR | O_CLOEXEC)
    }

    /// The descriptor of kind `kind % kindCount`.
    func descriptor(kind: UInt8) -> Int32 {
        switch Int(kind) % Self.kindCount {
        case 0: guestRAM.rawValue
        case 1: smallMemfd.rawValue
        case 2: eventfd.descriptor.rawValue
        case 3: pipeReadEnd.rawValue
        case 4: socket.rawValue
        case 5: devNull.rawValue
        default: sealedMemfd.rawValue
        }
    }
}
