#if canImport(Glibc)
import Glibc
#endif

/// Byte comparisons for the bodies' checks (memcmp first: most comparisons find nothing, and
/// they cover whole memories and images).
enum FuzzGuestBytes {
    /// The first index where `first` and `second` differ (or where the shorter one ends), or nil
    /// when they are equal.
    static func firstDifference(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> Int? {
        let common = min(first.count, second.count)
        if common > 0, let left = first.baseAddress, let right = second.baseAddress, memcmp(left, right, common) == 0 {
            return first.count == second.count ? nil : common
        }
        return (0..<common).first { first[$0] != second[$0] } ?? (first.count == second.count ? nil : common)
    }
}
