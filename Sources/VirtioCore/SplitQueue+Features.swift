extension SplitQueue {
    /// The ring features negotiated for the device that change how the queue is walked.
    public struct Features: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// VIRTIO_F_INDIRECT_DESC (feature bit 28).
        public static let indirectDescriptors = Features(rawValue: 1 << 0)
        /// VIRTIO_F_EVENT_IDX (feature bit 29): used_event / avail_event instead of the flags.
        public static let eventIndex = Features(rawValue: 1 << 1)

        /// Feature bit numbers (VIRTIO 1.2 §6).
        public static let indirectDescriptorsBit: UInt64 = 28
        public static let eventIndexBit: UInt64 = 29

        /// The ring features contained in a negotiated virtio feature word.
        public init(negotiatedFeatures: UInt64) {
            var features: Features = []
            if negotiatedFeatures & (1 << Self.indirectDescriptorsBit) != 0 { features.insert(.indirectDescriptors) }
            if negotiatedFeatures & (1 << Self.eventIndexBit) != 0 { features.insert(.eventIndex) }
            self = features
        }
    }
}
