/// Front-end addresses → the backing files of guest memory: the reverse of mapping a memory
/// table, as VFIO converts a VMA into the PFN range behind it. For zero-copy I/O (hand the
/// backing file and offset to the kernel instead of copying through the mapping) and for
/// diagnostics (which region and file an address is in).
///
/// Invariants: regions are non-empty, their front-end and file ranges fit in 64 bits, and
/// they never overlap in front-end addresses. Address arithmetic in
/// ``translate(userAddress:length:into:)`` is modulo 2^64, as in ``IOTLB``.
public struct ReverseTranslator: Sendable {
    /// The regions, as given.
    public let regions: [BackedMemoryRegion]
    private var store = RangeStore<BackingLocation>()

    /// Checks a memory table and indexes it by front-end address.
    ///
    /// - Throws: ``ReverseTranslationError`` for the first region that is empty, wraps, or
    ///   overlaps an earlier one.
    public init(regions: [BackedMemoryRegion]) throws(ReverseTranslationError) {
        self.regions = regions
        for (index, region) in regions.enumerated() {
            guard region.size > 0 else { throw .emptyRegion(index: index) }
            let (last, wraps) = region.userAddress.addingReportingOverflow(region.size - 1)
            guard !wraps else { throw .regionWraps(index: index) }
            guard !region.fileOffset.addingReportingOverflow(region.size - 1).overflow else { throw .fileOffsetWraps(index: index) }
            do {
                try store.insert(region.userAddress...last, BackingLocation(backing: region.backing, fileOffset: region.fileOffset))
            } catch {
                // Only earlier regions are in the store, and they were checked not to wrap.
                let earlier = regions[..<index].firstIndex { $0.userAddress <= last && region.userAddress <= $0.userAddress + ($0.size - 1) } ?? index
                throw .overlappingRegions(earlier, index)
            }
        }
    }

    /// Where the byte at `userAddress` is backed, if anywhere.
    public func location(of userAddress: UInt64) -> BackingLocation? {
        guard let (range, location) = store.lookup(userAddress) else { return nil }
        return location.sliced(from: userAddress - range.lowerBound)
    }

    /// The backing segments of `length` bytes at `userAddress`, written to the front of
    /// `segments`; adjacent regions continuing the same file give one segment.
    public func translate(userAddress: UInt64, length: UInt64, into segments: UnsafeMutableBufferPointer<BackingSegment>) -> ReverseTranslation {
        var produced = 0
        var cursor = userAddress
        var remaining = length
        while remaining > 0 {
            guard let (range, location) = store.lookup(cursor) else { return .unbacked(userAddress: cursor) }
            let available = range.upperBound - cursor  // bytes from cursor to the region's end, minus one
            let taken = remaining - 1 <= available ? remaining : available + 1
            let fileOffset = location.fileOffset + (cursor - range.lowerBound)
            if produced > 0, segments[produced - 1].backing == location.backing,
                Self.continues(segments[produced - 1], at: fileOffset)
            {
                segments[produced - 1].length += taken
            } else {
                guard produced < segments.count else { return .needsMoreSegments }
                segments[produced] = BackingSegment(backing: location.backing, fileOffset: fileOffset, length: taken)
                produced += 1
            }
            remaining -= taken
            cursor &+= taken
        }
        return .translated(segmentCount: produced)
    }

    /// ``translate(userAddress:length:into:)`` into an array, for diagnostics: nil when some
    /// byte is unbacked.
    public func segments(userAddress: UInt64, length: UInt64) -> [BackingSegment]? {
        var capacity = 4
        while true {
            var storage = [BackingSegment](repeating: BackingSegment(backing: BackingID(rawValue: 0), fileOffset: 0, length: 0), count: capacity)
            let answer = storage.withUnsafeMutableBufferPointer { translate(userAddress: userAddress, length: length, into: $0) }
            switch answer {
            case .translated(let count): return Array(storage.prefix(count))
            case .unbacked: return nil
            case .needsMoreSegments: capacity *= 2
            }
        }
    }

    /// Whether `segment` ends right before `fileOffset` (and not at the top of the space).
    private static func continues(_ segment: BackingSegment, at fileOffset: UInt64) -> Bool {
        let (end, overflow) = segment.fileOffset.addingReportingOverflow(segment.length)
        return !overflow && end == fileOffset
    }
}
