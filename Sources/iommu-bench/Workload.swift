/// `count` mappings of one 4 KiB page each, the way a guest driver maps DMA buffers page by
/// page: IOVAs every 8 KiB from 1 GiB (so no two mappings are adjacent and each is its own
/// IOTLB entry), user addresses a random permutation of pages in a front-end region (so nothing
/// merges into huge leaves: the page table walks all 4 levels, its worst case).
struct Workload {
    static let page: UInt64 = 4096
    static let iovaBase: UInt64 = 1 << 30
    static let iovaStride: UInt64 = 2 * page
    static let userBase: UInt64 = 0x7f00_0000_0000

    let count: Int
    /// User address of mapping `i`.
    let userAddresses: [UInt64]

    init(count: Int, seed: UInt64 = 1) {
        self.count = count
        var random = SplitMix64(state: seed)
        var pages = (0..<UInt64(count)).map { Self.userBase + $0 * Self.page }
        pages.shuffle(using: &random)
        userAddresses = pages
    }

    func iova(_ index: Int) -> UInt64 { Self.iovaBase + UInt64(index) * Self.iovaStride }

    /// The order buffers are translated in.
    enum Pattern: String, CaseIterable {
        /// A uniformly random mapping each time.
        case random
        /// Mapping 0, 1, 2, ... wrapping around.
        case sequential
        /// The same buffer again and again: what a last-hit cache is for.
        case repeated
    }

    /// `length` IOVAs of 4 KiB buffers (each the start of a mapping) in `pattern`'s order.
    func iovas(_ pattern: Pattern, length: Int, seed: UInt64 = 2) -> [UInt64] {
        var random = SplitMix64(state: seed)
        switch pattern {
        case .random: return (0..<length).map { _ in iova(Int(random.next() % UInt64(count))) }
        case .sequential: return (0..<length).map { iova($0 % count) }
        case .repeated: return Array(repeating: iova(count / 2), count: length)
        }
    }
}
