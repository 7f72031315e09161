import VirtioCore

extension DriverSplitQueue {
    /// The three ring addresses in one address space, as SET_VRING_ADDR carries them.
    public struct RingAddresses<Address: MemoryAddress>: Sendable {
        public let descriptorTable: Address
        public let availableRing: Address
        public let usedRing: Address
    }
}
