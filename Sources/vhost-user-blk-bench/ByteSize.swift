/// Parses sizes as fio writes them: 4096, 4k, 64K, 1m, 2G (powers of 1024).
enum ByteSize {
    static func parse(_ text: String) -> UInt64? {
        guard let last = text.last else { return nil }
        let multiplier: UInt64
        var digits = Substring(text)
        switch last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        case "t", "T": multiplier = 1 << 40
        default: multiplier = 1
        }
        if multiplier != 1 { digits = digits.dropLast() }
        guard let value = UInt64(digits) else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }
}
