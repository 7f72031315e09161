import VhostSystem
import VirtioCore

extension GuestRAM {
    /// One memfd-backed region.
    public final class Region {
        public let descriptor: OwnedFileDescriptor
        public let guestPhysicalStart: GuestPhysicalAddress
        public let frontEndVirtualStart: FrontEndVirtualAddress
        public let size: Int
        public let mmapOffset: UInt64
        /// The driver's view: the whole memfd, mapped here.
        public let mapping: MemoryMapping
        /// Bump-allocator cursor: bytes from the region's start already handed out.
        var allocated = 0

        init(descriptor: OwnedFileDescriptor, guestPhysicalStart: GuestPhysicalAddress,
             frontEndVirtualStart: FrontEndVirtualAddress, size: Int, mmapOffset: UInt64, mapping: MemoryMapping) {
            self.descriptor = descriptor
            self.guestPhysicalStart = guestPhysicalStart
            self.frontEndVirtualStart = frontEndVirtualStart
            self.size = size
            self.mmapOffset = mmapOffset
            self.mapping = mapping
        }

        /// Host address of the region's first byte in the driver's view.
        public var hostStart: UnsafeMutableRawPointer {
            // SAFETY: the mapping is mmapOffset + size bytes long (made so in GuestRAM.init).
            mapping.base + Int(mmapOffset)
        }

        /// Whether `length` bytes at `address` lie inside this region.
        func contains(_ address: GuestPhysicalAddress, length: Int) -> Bool {
            guard address >= guestPhysicalStart, length >= 0 else { return false }
            let offset = address.rawValue - guestPhysicalStart.rawValue
            return offset < UInt64(size) && UInt64(length) <= UInt64(size) - offset
        }
    }
}
