/// An address in one of the address spaces guest memory is known by.
///
/// Each space has its own type (`GuestPhysicalAddress`, `FrontEndVirtualAddress`, and later an
/// IOVA type for the vIOMMU), so an address from one space cannot be passed where another is
/// expected: mixing them does not compile. The types deliberately have no integer literal
/// conversion and no arithmetic operators; `advanced(by:)` is checked.
public protocol MemoryAddress: RawRepresentable, Comparable, Hashable, Sendable, CustomStringConvertible
where RawValue == UInt64 {
    init(rawValue: UInt64)
}

extension MemoryAddress {
    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var description: String {
        "0x" + String(rawValue, radix: 16)
    }

    /// The address `offset` bytes further on, or nil if that would pass 2^64 - 1.
    public func advanced(by offset: UInt64) -> Self? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : Self(rawValue: sum)
    }
}
