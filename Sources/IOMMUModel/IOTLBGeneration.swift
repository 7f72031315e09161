import Synchronization

/// The process-wide source of IOTLB generations: every IOTLB value that changes takes the next
/// number, so two IOTLB values with the same generation hold the same entries, even when one
/// is a copy of the other that was changed separately. 0 is never handed out.
enum IOTLBGeneration {
    private static let counter = Atomic<UInt64>(0)

    /// A generation no IOTLB has had before.
    static func next() -> UInt64 {
        // Relaxed: only uniqueness matters; the IOTLB value itself is published by whoever
        // shares it, with its own synchronisation.
        counter.wrappingAdd(1, ordering: .relaxed).newValue
    }
}
