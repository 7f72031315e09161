/// Which kind of address a range check was about, for error messages.
///
/// The protocol library keeps addresses as raw `UInt64`s; which address space a value is in
/// is decided by a higher layer. This enum only names the field that failed a check.
public enum AddressKind: Equatable, Sendable, CustomStringConvertible {
    /// A guest physical address (`guest_phys_addr`).
    case guestPhysical
    /// An address in the front end's (QEMU's) virtual address space (`userspace_addr`, `uaddr`).
    case frontEndVirtual
    /// An I/O virtual address (`iova`), translated through the IOTLB.
    case ioVirtual
    /// An offset into a file descriptor's mapping (`mmap_offset`).
    case fileOffset

    public var description: String {
        switch self {
        case .guestPhysical: "guest physical"
        case .frontEndVirtual: "front-end virtual"
        case .ioVirtual: "I/O virtual"
        case .fileOffset: "mmap offset"
        }
    }
}
