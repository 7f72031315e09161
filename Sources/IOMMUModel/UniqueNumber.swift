import Synchronization

/// Numbers unique within the process: IOTLB generations and pin-tracker identities.
///
/// Every IOTLB value that changes takes the next number as its generation, so two IOTLB values
/// with the same generation hold the same entries, even when one is a copy of the other that
/// was changed separately. 0 is never handed out.
enum UniqueNumber {
    private static let counter = Atomic<UInt64>(0)

    /// A number never returned before (2^64 calls would be needed to wrap).
    static func next() -> UInt64 {
        // Relaxed: only uniqueness matters; the values that carry the number are published by
        // whoever shares them, with their own synchronisation.
        counter.wrappingAdd(1, ordering: .relaxed).newValue
    }
}
