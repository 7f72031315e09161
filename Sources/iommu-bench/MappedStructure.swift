import IOMMUModel

/// A structure the benchmark times: built from a workload, updated, invalidated and translated
/// through. The timed loops are generic over it and specialized per conformer, so no indirect
/// call is timed.
protocol MappedStructure {
    /// The name printed in the figures.
    static var name: String { get }
    /// Builds the structure with every mapping of `workload`, in IOVA order. `failures` counts
    /// mappings it refused (a benchmark bug: reported, never expected).
    init(_ workload: Workload, failures: inout Int)
    /// Translates the 4 KiB buffer at `iova` for reading.
    mutating func translate(iova: UInt64, into segments: UnsafeMutableBufferPointer<IOTLBSegment>) -> IOTLBTranslation
    /// Removes the 4 KiB mapping at `iova` (an INVALIDATE); false if refused.
    mutating func invalidate(iova: UInt64) -> Bool
    /// Maps the 4 KiB page at `iova` to `userAddress`, read-write (an UPDATE); false if refused.
    mutating func update(iova: UInt64, userAddress: UInt64) -> Bool
}
