import VirtioCore

extension GuestRAM {
    /// Where a region should go.
    public struct RegionSpec: Sendable {
        public var guestPhysicalStart: GuestPhysicalAddress
        public var size: Int
        /// Nil: `GuestRAM.defaultFrontEndVirtualBase` + the guest-physical start.
        public var frontEndVirtualStart: FrontEndVirtualAddress?
        /// The region starts this far into its memfd (the file is `mmapOffset + size` long).
        public var mmapOffset: UInt64

        public init(guestPhysicalStart: GuestPhysicalAddress, size: Int,
                    frontEndVirtualStart: FrontEndVirtualAddress? = nil, mmapOffset: UInt64 = 0) {
            self.guestPhysicalStart = guestPhysicalStart
            self.size = size
            self.frontEndVirtualStart = frontEndVirtualStart
            self.mmapOffset = mmapOffset
        }
    }
}
