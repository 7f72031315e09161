/// Sizes as command lines write them: 4096, 4k, 64K, 1m, 2G, 1t (powers of 1024).
public enum ByteSize {
    /// The number of bytes, or nil for text that is not a size or overflows 64 bits.
    public static func parse(_ text: String) -> UInt64? {
        guard let last = text.last else { return nil }
        let multiplier: UInt64
        switch last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        case "t", "T": multiplier = 1 << 40
        default: multiplier = 1
        }
        guard let value = UInt64(multiplier == 1 ? Substring(text) : text.dropLast()) else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }
}
