import VirtioCore

extension GuestRAM {
    /// A piece of RAM handed out by `allocate`.
    public struct Allocation {
        public let guestPhysicalAddress: GuestPhysicalAddress
        public let frontEndVirtualAddress: FrontEndVirtualAddress
        /// The driver's view of the bytes.
        public let pointer: UnsafeMutableRawPointer
        public let size: Int
    }
}
