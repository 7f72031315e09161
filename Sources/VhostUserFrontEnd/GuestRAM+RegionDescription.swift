import VhostSystem
import VirtioCore

extension GuestRAM {
    /// What the back end needs to map a region: a vhost-user memory region plus its fd.
    public struct RegionDescription {
        public let descriptor: OwnedFileDescriptor
        public let guestPhysicalStart: GuestPhysicalAddress
        public let size: UInt64
        public let frontEndVirtualStart: FrontEndVirtualAddress
        public let mmapOffset: UInt64
    }
}
