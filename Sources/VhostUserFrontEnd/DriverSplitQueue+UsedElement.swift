extension DriverSplitQueue {
    /// One element read back from the used ring.
    public struct UsedElement: Equatable, Sendable {
        public let id: UInt32
        public let length: UInt32

        public init(id: UInt32, length: UInt32) {
            self.id = id
            self.length = length
        }
    }
}
