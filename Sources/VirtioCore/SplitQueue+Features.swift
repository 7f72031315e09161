import VirtioSpec

extension SplitQueue {
    /// The ring features negotiated for the device that change how the queue is walked.
    public struct Features: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// VIRTIO_F_INDIRECT_DESC (feature bit 28).
        public static let indirectDescriptors = Features(rawValue: 1 << 0)
        /// VIRTIO_F_EVENT_IDX (feature bit 29): used_event / avail_event instead of the flags.
        public static let eventIndex = Features(rawValue: 1 << 1)

        /// The ring features contained in the negotiated virtio features.
        public init(negotiated: VirtioFeatures) {
            var features: Features = []
            if negotiated.contains(.indirectDescriptors) { features.insert(.indirectDescriptors) }
            if negotiated.contains(.eventIndex) { features.insert(.eventIndex) }
            self = features
        }
    }
}
