extension FuzzGuestMemory {
    /// Where one region lies in guest-physical space and in the memfd.
    struct Placement: Sendable {
        let guestPhysicalStart: UInt64
        let size: Int
        let fileOffset: Int

        /// One past the region's last guest-physical address.
        var guestPhysicalEnd: UInt64 { guestPhysicalStart + UInt64(size) }
    }
}
