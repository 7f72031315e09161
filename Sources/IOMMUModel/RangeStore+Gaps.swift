/// Free space: the lowest fitting allocation in a window and the first gap of a given size.
///
/// Both walk the gaps between entries in increasing order and skip every subtree whose largest
/// internal gap is smaller than the size asked for, so a search is O(log n) times the node
/// width. The exception is ``RangeStore/allocate(size:alignment:within:)`` with an alignment
/// larger than the size: gaps big enough for the size but not for it once aligned are looked at
/// one by one (the maple tree's `mas_empty_area` has the same property).
extension RangeStore {
    /// The lowest free range of `size` bytes whose first byte is a multiple of `alignment`
    /// (0 and 1 both mean any byte) and which lies inside `window`; nil when none fits, when
    /// `size` is 0, or when `size` is larger than the window.
    @inlinable public func allocate(size: UInt64, alignment: UInt64, within window: ClosedRange<UInt64>) -> ClosedRange<UInt64>? {
        guard size > 0 else { return nil }
        let alignment = max(alignment, 1)
        return searchFree(within: window, minimumSize: size) { free in
            let remainder = free.lowerBound % alignment
            var start = free.lowerBound
            if remainder != 0 {
                let (aligned, overflow) = start.addingReportingOverflow(alignment - remainder)
                guard !overflow else { return nil }
                start = aligned
            }
            guard start <= free.upperBound, size - 1 <= free.upperBound - start else { return nil }
            return start...(start + (size - 1))
        }
    }

    /// The lowest maximal run of free bytes inside `window` (clipped to it) that holds at least
    /// `minimumSize` bytes (0 means 1). The whole space counts as free when the store is empty.
    @inlinable public func firstGap(within window: ClosedRange<UInt64>, minimumSize: UInt64) -> ClosedRange<UInt64>? {
        searchFree(within: window, minimumSize: max(minimumSize, 1)) { $0 }
    }

    /// Where a gap search stands after a subtree.
    @usableFromInline enum GapSearch {
        case found(ClosedRange<UInt64>)
        /// The gaps have passed the window's upper end: stop.
        case passed
        case continuing
    }

    /// Offers each free run, clipped to `window` and at least `minimumSize` (>= 1) bytes, to
    /// `accept` in increasing order; returns the first range `accept` makes of one.
    @inlinable func searchFree(
        within window: ClosedRange<UInt64>,
        minimumSize: UInt64,
        _ accept: (ClosedRange<UInt64>) -> ClosedRange<UInt64>?
    ) -> ClosedRange<UInt64>? {
        withoutActuallyEscaping(accept) { accept in
            searchFree(GapSearcher(window: window, minimumSize: minimumSize, accept: accept))
        }
    }

    @inlinable func searchFree(_ search: GapSearcher) -> ClosedRange<UInt64>? {
        let minimumSize = search.minimumSize
        guard root >= 0 else {
            if case .found(let range) = search.offer(0, UInt64.max) { return range }
            return nil
        }
        let whole = summary(of: root, level: height)
        if whole.first > 0 {
            switch search.offer(0, whole.first - 1) {
            case .found(let range): return range
            case .passed: return nil
            case .continuing: break
            }
        }
        if whole.gap >= minimumSize {
            switch searchGaps(below: root, level: height, search) {
            case .found(let range): return range
            case .passed: return nil
            case .continuing: break
            }
        }
        if whole.last < UInt64.max, case .found(let range) = search.offer(whole.last + 1, UInt64.max) {
            return range
        }
        return nil
    }

    /// Offers the gaps between the entries of the subtree at `node`.
    @inlinable func searchGaps(below node: Int, level: Int, _ search: GapSearcher) -> GapSearch {
        let window = search.window
        if level == 0 {
            let leaf = leaves[node]
            // The gap before entry `slot` ends at firsts[slot] - 1; earlier gaps end below
            // lasts[slot - 1] < window.lowerBound.
            var slot = max(Self.firstSlot(atOrAbove: window.lowerBound, in: leaf.lasts), 1)
            while slot < leaf.count {
                let result = search.offer(leaf.lasts[slot - 1] &+ 1, leaf.firsts[slot] &- 1, ifNonEmpty: leaf.firsts[slot] - leaf.lasts[slot - 1] > 1)
                guard case .continuing = result else { return result }
                slot += 1
            }
            return .continuing
        }
        let branch = branches[node]
        var slot = Self.firstSlot(atOrAbove: window.lowerBound, in: branch.lasts)
        while slot < branch.count {
            if slot > 0 {
                let result = search.offer(branch.lasts[slot - 1] &+ 1, branch.firsts[slot] &- 1, ifNonEmpty: branch.firsts[slot] - branch.lasts[slot - 1] > 1)
                guard case .continuing = result else { return result }
            }
            // Gaps inside the child start after firsts[slot].
            guard branch.firsts[slot] < window.upperBound else { return .passed }
            if branch.gaps[slot] >= search.minimumSize {
                let result = searchGaps(below: branch.children[slot], level: level - 1, search)
                guard case .continuing = result else { return result }
            }
            slot += 1
        }
        return .continuing
    }

    /// The fixed parameters of one gap search.
    @usableFromInline struct GapSearcher {
        @usableFromInline let window: ClosedRange<UInt64>
        @usableFromInline let minimumSize: UInt64
        @usableFromInline let accept: (ClosedRange<UInt64>) -> ClosedRange<UInt64>?

        @inlinable init(window: ClosedRange<UInt64>, minimumSize: UInt64, accept: @escaping (ClosedRange<UInt64>) -> ClosedRange<UInt64>?) {
            self.window = window
            self.minimumSize = minimumSize
            self.accept = accept
        }

        /// Offers the free run `start...end` when `nonEmpty` (callers compute the bounds with
        /// wrapping arithmetic and say separately whether the run exists).
        @inlinable func offer(_ start: UInt64, _ end: UInt64, ifNonEmpty nonEmpty: Bool = true) -> GapSearch {
            guard nonEmpty else { return .continuing }
            if start > window.upperBound { return .passed }
            if end < window.lowerBound { return .continuing }
            let clipped = max(start, window.lowerBound)...min(end, window.upperBound)
            guard clipped.upperBound - clipped.lowerBound >= minimumSize - 1, let found = accept(clipped) else {
                return .continuing
            }
            return .found(found)
        }
    }
}
