import IOMMUModel

extension IOMMUModelFuzz {
    /// The plain model the fuzz body compares every range store of the IOMMU model with: a
    /// sorted array of non-overlapping ranges, each change written the obvious way (rebuild the
    /// array), free space found by walking the gaps in 128-bit arithmetic.
    struct RangeReference<Value: RangeValue> {
        typealias Entry = (range: ClosedRange<UInt64>, value: Value)

        /// Sorted by first byte, never overlapping.
        private(set) var entries: [Entry] = []

        var count: Int { entries.count }

        init() {}

        /// The entries of a store of the model, to compare.
        init(_ store: RangeStore<Value>) {
            store.forEach(intersecting: 0...UInt64.max) { range, value in entries.append((range, value)) }
        }

        /// The index of the entry holding `point`, if any (binary search: translations walk
        /// many entries).
        func index(containing point: UInt64) -> Int? {
            var low = 0
            var high = entries.count
            while low < high {
                let middle = (low + high) / 2
                if entries[middle].range.lowerBound <= point { low = middle + 1 } else { high = middle }
            }
            guard low > 0, entries[low - 1].range.contains(point) else { return nil }
            return low - 1
        }

        func lookup(_ point: UInt64) -> Entry? {
            index(containing: point).map { entries[$0] }
        }

        /// The lowest entry sharing a byte with `range`.
        func firstEntry(intersecting range: ClosedRange<UInt64>) -> Entry? {
            entries.first { $0.range.overlaps(range) }
        }

        func entries(intersecting range: ClosedRange<UInt64>) -> [Entry] {
            entries.filter { $0.range.overlaps(range) }
        }

        /// Removes every byte of `range`; an entry sticking out keeps its parts outside, the
        /// upper part's value sliced to where it starts.
        mutating func erase(_ range: ClosedRange<UInt64>) {
            var kept: [Entry] = []
            kept.reserveCapacity(entries.count + 1)
            for entry in entries {
                guard entry.range.overlaps(range) else {
                    kept.append(entry)
                    continue
                }
                if entry.range.lowerBound < range.lowerBound {
                    kept.append((entry.range.lowerBound...(range.lowerBound - 1), entry.value))
                }
                if entry.range.upperBound > range.upperBound {
                    let tail = range.upperBound + 1
                    kept.append((tail...entry.range.upperBound, entry.value.sliced(from: tail - entry.range.lowerBound)))
                }
            }
            entries = kept
        }

        /// Maps `range` to `value`, overwriting what it covers.
        mutating func store(_ range: ClosedRange<UInt64>, _ value: Value) {
            erase(range)
            let position = entries.firstIndex { $0.range.lowerBound > range.lowerBound } ?? entries.count
            entries.insert((range, value), at: position)
        }

        /// The lowest range of `size` bytes inside `window`, starting at a multiple of
        /// `alignment`, that no entry touches; nil for size 0 or when none fits.
        func lowestFree(size: UInt64, alignment: UInt64, within window: ClosedRange<UInt64>) -> ClosedRange<UInt64>? {
            guard size > 0 else { return nil }
            let alignment = UInt128(max(alignment, 1))
            var gapStart: UInt128 = 0
            for index in 0...entries.count {
                // The free bytes before entry `index` (after the last entry for the last index).
                let gapEnd = index < entries.count ? UInt128(entries[index].range.lowerBound) : UInt128(1) << 64
                let low = max(gapStart, UInt128(window.lowerBound))
                let high = min(gapEnd, UInt128(window.upperBound) + 1)  // both ends exclusive of entries
                if low < high {
                    let start = (low + alignment - 1) / alignment * alignment
                    if start + UInt128(size) <= high { return UInt64(start)...UInt64(start + UInt128(size) - 1) }
                }
                if index < entries.count { gapStart = UInt128(entries[index].range.upperBound) + 1 }
            }
            return nil
        }

        /// Every entry as it would be after merging neighbours that `continues` joins: what two
        /// stores that split the same mappings differently both reduce to.
        func merged(_ continues: (Entry, Entry) -> Bool) -> [Entry] {
            var result: [Entry] = []
            for entry in entries {
                if let last = result.last, continues(last, entry) {
                    result[result.count - 1].range = last.range.lowerBound...entry.range.upperBound
                } else {
                    result.append(entry)
                }
            }
            return result
        }
    }
}
