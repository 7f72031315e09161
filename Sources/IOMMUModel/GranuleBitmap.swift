/// Which pages of one granule of a ``TwoStepMapper`` reservation are linked: one bit per page,
/// as the split DMA API tracks the state of an IOVA granule.
public struct GranuleBitmap: Equatable, Sendable {
    /// The pages in the granule (granule size / page size).
    public let pageCount: Int
    /// The number of pages whose bit is set.
    public private(set) var linkedCount = 0
    private var words: [UInt64]

    init(pageCount: Int) {
        self.pageCount = pageCount
        words = Array(repeating: 0, count: (pageCount + 63) / 64)
    }

    /// Whether page `index` (0 ..< ``pageCount``) is linked; false outside the granule.
    public subscript(index: Int) -> Bool {
        guard index >= 0, index < pageCount else { return false }
        return words[index / 64] & (1 << UInt64(index % 64)) != 0
    }

    /// The linked pages, in order.
    public var linkedPages: [Int] {
        (0..<pageCount).filter { self[$0] }
    }

    /// Sets (or clears) the bits of `pages`, a word at a time.
    mutating func set(_ pages: Range<Int>, linked: Bool) {
        var page = pages.lowerBound
        while page < pages.upperBound {
            let word = page / 64
            let bit = page % 64
            let count = min(64 - bit, pages.upperBound - page)
            let mask = (count == 64 ? UInt64.max : (UInt64(1) << UInt64(count)) - 1) << UInt64(bit)
            let before = words[word].nonzeroBitCount
            words[word] = linked ? words[word] | mask : words[word] & ~mask
            linkedCount += words[word].nonzeroBitCount - before
            page += count
        }
    }
}
