/// A guest's IOMMU driver in two steps, as the kernel's split DMA API does it: first reserve
/// IOVA space (whole granules, aligned, inside a window), later link pages into it, unlink any
/// part, replace a page, and release the reservation. Each step returns the IOTLB messages a
/// vIOMMU would send the back end for it, as values, so a test front end can play a guest with
/// an IOMMU without a VM.
///
/// Invariants: reservations never overlap, are granule-aligned whole granules inside
/// ``window``; every linked page lies in a reservation; a page's bit in its granule's
/// ``GranuleBitmap`` is set exactly when the page is linked (a granule without linked pages has
/// no bitmap); applying every message returned so far, in order, to an empty ``IOTLB`` gives
/// it exactly the linked pages' translations.
public struct TwoStepMapper: Sendable {
    /// The IOVAs reservations are taken from.
    public let window: ClosedRange<UInt64>
    /// The reservation unit and alignment (a power of two, e.g. 2 MiB).
    public let granuleSize: UInt64
    /// The link unit (a power of two, e.g. 4 KiB).
    public let pageSize: UInt64

    private var reservations = RangeStore<ReservationTag>()
    /// The linked pages: one entry per link call (or replaced page), never overlapping.
    public private(set) var links = RangeStore<IOTLBEntry>()
    /// One bitmap per granule (keyed by IOVA / granule size) that has a linked page.
    private var bitmaps: [UInt64: GranuleBitmap] = [:]
    private var lastReservationID: UInt64 = 0

    /// A mapper reserving inside `window` in granules of `granuleSize`, linking pages of
    /// `pageSize`.
    ///
    /// - Throws: ``TwoStepMappingError/invalidGeometry(granuleSize:pageSize:)``.
    public init(window: ClosedRange<UInt64>, granuleSize: UInt64 = 2 << 20, pageSize: UInt64 = 4096) throws(TwoStepMappingError) {
        guard pageSize.nonzeroBitCount == 1, granuleSize.nonzeroBitCount == 1, granuleSize >= pageSize,
            granuleSize / pageSize <= 1 << 18
        else { throw .invalidGeometry(granuleSize: granuleSize, pageSize: pageSize) }
        self.window = window
        self.granuleSize = granuleSize
        self.pageSize = pageSize
    }

    /// The number of reservations held.
    public var reservationCount: Int { reservations.count }

    /// The reservation holding `iova`, if any.
    public func reservation(containing iova: UInt64) -> IOVAReservation? {
        reservations.lookup(iova).map { IOVAReservation(id: $0.value.id, range: $0.range) }
    }

    /// The bitmap of the granule holding `iova`; nil when none of its pages is linked.
    public func bitmap(ofGranuleContaining iova: UInt64) -> GranuleBitmap? {
        bitmaps[iova / granuleSize]
    }

    // MARK: Step one: IOVA space

    /// Reserves the lowest free run of whole granules holding `size` bytes in the window.
    ///
    /// - Throws: ``TwoStepMappingError/emptySize``, ``TwoStepMappingError/wrapsAddressSpace(start:size:)``
    ///   when rounding up overflows, ``TwoStepMappingError/outOfSpace(size:)``.
    public mutating func reserve(size: UInt64) throws(TwoStepMappingError) -> IOVAReservation {
        guard size > 0 else { throw .emptySize }
        let (padded, overflow) = size.addingReportingOverflow(granuleSize - 1)
        guard !overflow else { throw .wrapsAddressSpace(start: 0, size: size) }
        let rounded = padded & ~(granuleSize - 1)
        guard let range = reservations.allocate(size: rounded, alignment: granuleSize, within: window) else {
            throw .outOfSpace(size: rounded)
        }
        lastReservationID += 1
        reservations.store(range, ReservationTag(id: lastReservationID))
        return IOVAReservation(id: lastReservationID, range: range)
    }

    /// Unlinks every page of `reservation` and gives its IOVA space back.
    ///
    /// - Returns: INVALIDATEs for the linked runs.
    /// - Throws: ``TwoStepMappingError/unknownReservation(_:)``.
    public mutating func release(_ reservation: IOVAReservation) throws(TwoStepMappingError) -> [IOTLBMessageToSend] {
        guard let held = reservations.lookup(reservation.range.lowerBound), held.range == reservation.range,
            held.value.id == reservation.id
        else { throw .unknownReservation(reservation) }
        let messages = unlinkPages(in: reservation.range)
        reservations.erase(reservation.range)
        return messages
    }

    // MARK: Step two: pages

    /// Links the pages of `size` bytes at `iova` to the contiguous user memory at `userAddress`.
    ///
    /// - Returns: one UPDATE for the whole run.
    /// - Throws: ``TwoStepMappingError``: the range must be page-aligned, inside one
    ///   reservation, and have no linked page.
    public mutating func link(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission) throws(TwoStepMappingError) -> [IOTLBMessageToSend] {
        let range = try checkedLinkRange(iova: iova, size: size, permission: permission)
        guard userAddress % pageSize == 0 else { throw .unaligned(userAddress) }
        guard !userAddress.addingReportingOverflow(size - 1).overflow else {
            throw .wrapsAddressSpace(start: userAddress, size: size)
        }
        let entry = IOTLBEntry(userAddress: userAddress, permission: permission)
        addLink(range, entry)
        return [.update(iova: iova, size: size, userAddress: userAddress, permission: permission)]
    }

    /// Links consecutive pages at `iova`, page `i` to `pages[i]` (each page-aligned).
    ///
    /// - Returns: one UPDATE per run of pages whose user addresses continue each other.
    /// - Throws: ``TwoStepMappingError``, as ``link(iova:size:userAddress:permission:)``.
    public mutating func link(iova: UInt64, pages: [UInt64], permission: IOMMUPermission) throws(TwoStepMappingError) -> [IOTLBMessageToSend] {
        let (size, overflow) = UInt64(pages.count).multipliedReportingOverflow(by: pageSize)
        guard !overflow else { throw .wrapsAddressSpace(start: iova, size: .max) }
        if let unaligned = pages.first(where: { $0 % pageSize != 0 }) { throw .unaligned(unaligned) }
        if let wrapping = pages.first(where: { $0.addingReportingOverflow(pageSize - 1).overflow }) {
            throw .wrapsAddressSpace(start: wrapping, size: pageSize)
        }
        _ = try checkedLinkRange(iova: iova, size: size, permission: permission)
        var messages: [IOTLBMessageToSend] = []
        var runStart = 0
        for index in 1...pages.count {
            let continues = index < pages.count && Self.follows(pages[index], pages[index - 1], by: pageSize)
            guard !continues else { continue }
            let first = iova + UInt64(runStart) * pageSize
            let runSize = UInt64(index - runStart) * pageSize
            addLink(first...(first + (runSize - 1)), IOTLBEntry(userAddress: pages[runStart], permission: permission))
            messages.append(.update(iova: first, size: runSize, userAddress: pages[runStart], permission: permission))
            runStart = index
        }
        return messages
    }

    /// Unlinks the linked pages of `size` bytes at `iova` (any page-aligned part of one
    /// reservation; pages not linked are skipped).
    ///
    /// - Returns: one INVALIDATE per run of consecutive linked pages.
    public mutating func unlink(iova: UInt64, size: UInt64) throws(TwoStepMappingError) -> [IOTLBMessageToSend] {
        let range = try checkedRange(iova: iova, size: size)
        return unlinkPages(in: range)
    }

    /// Points the linked page at `iova` to `userAddress` with `permission`.
    ///
    /// - Returns: an INVALIDATE of the page (the device may hold the old translation) and an
    ///   UPDATE with the new one.
    public mutating func replace(iova: UInt64, userAddress: UInt64, permission: IOMMUPermission) throws(TwoStepMappingError) -> [IOTLBMessageToSend] {
        guard userAddress % pageSize == 0 else { throw .unaligned(userAddress) }
        guard !userAddress.addingReportingOverflow(pageSize - 1).overflow else {
            throw .wrapsAddressSpace(start: userAddress, size: pageSize)
        }
        try Self.check(permission)
        let page = try checkedRange(iova: iova, size: pageSize)
        guard links.lookup(iova) != nil else { throw .notLinked(iova: iova) }
        links.store(page, IOTLBEntry(userAddress: userAddress, permission: permission))
        return [
            .invalidate(iova: iova, size: pageSize),
            .update(iova: iova, size: pageSize, userAddress: userAddress, permission: permission),
        ]
    }

    // MARK: Checks and bookkeeping

    /// The range of a request: non-empty, page-aligned, not wrapping, inside one reservation.
    private func checkedRange(iova: UInt64, size: UInt64) throws(TwoStepMappingError) -> ClosedRange<UInt64> {
        guard size > 0 else { throw .emptySize }
        guard iova % pageSize == 0 else { throw .unaligned(iova) }
        guard size % pageSize == 0 else { throw .unaligned(size) }
        let (last, overflow) = iova.addingReportingOverflow(size - 1)
        guard !overflow else { throw .wrapsAddressSpace(start: iova, size: size) }
        guard let reservation = reservations.lookup(iova) else { throw .notReserved(iova: iova) }
        guard last <= reservation.range.upperBound else { throw .notReserved(iova: reservation.range.upperBound + 1) }
        return iova...last
    }

    /// ``checkedRange(iova:size:)`` plus what linking needs: a valid permission and no page
    /// linked yet.
    private func checkedLinkRange(iova: UInt64, size: UInt64, permission: IOMMUPermission) throws(TwoStepMappingError) -> ClosedRange<UInt64> {
        try Self.check(permission)
        let range = try checkedRange(iova: iova, size: size)
        if let linked = links.firstEntry(intersecting: range) {
            throw .alreadyLinked(iova: max(linked.range.lowerBound, range.lowerBound))
        }
        return range
    }

    /// Whether `next` starts right after the page at `page` (a page ending at the top of the
    /// space is followed by nothing).
    private static func follows(_ next: UInt64, _ page: UInt64, by pageSize: UInt64) -> Bool {
        let (end, overflow) = page.addingReportingOverflow(pageSize)
        return !overflow && end == next
    }

    private static func check(_ permission: IOMMUPermission) throws(TwoStepMappingError) {
        guard !permission.isEmpty, IOMMUPermission.readWrite.isSuperset(of: permission) else {
            throw .invalidPermission(rawValue: permission.rawValue)
        }
    }

    /// Records a link of the page-aligned `range`, which overlaps no linked page.
    private mutating func addLink(_ range: ClosedRange<UInt64>, _ entry: IOTLBEntry) {
        links.store(range, entry)
        setBits(range, linked: true)
    }

    /// Unlinks the linked pages inside `range` and returns the INVALIDATEs for their runs.
    private mutating func unlinkPages(in range: ClosedRange<UInt64>) -> [IOTLBMessageToSend] {
        var runs: [ClosedRange<UInt64>] = []
        links.forEach(intersecting: range) { linked, _ in
            let piece = linked.clamped(to: range)
            if let last = runs.last, last.upperBound &+ 1 == piece.lowerBound {
                runs[runs.count - 1] = last.lowerBound...piece.upperBound
            } else {
                runs.append(piece)
            }
        }
        links.erase(range)
        for run in runs { setBits(run, linked: false) }
        // A run lies inside one reservation, so it is smaller than 2^64 bytes.
        return runs.map { .invalidate(iova: $0.lowerBound, size: $0.upperBound - $0.lowerBound + 1) }
    }

    /// Sets or clears the bits of the pages of the page-aligned `range`, granule by granule;
    /// drops bitmaps that end up empty.
    private mutating func setBits(_ range: ClosedRange<UInt64>, linked: Bool) {
        let pagesPerGranule = Int(granuleSize / pageSize)
        var granule = range.lowerBound / granuleSize
        let lastGranule = range.upperBound / granuleSize
        while true {
            let granuleStart = granule * granuleSize
            let firstPage = range.lowerBound > granuleStart ? Int((range.lowerBound - granuleStart) / pageSize) : 0
            let lastPage = range.upperBound - granuleStart >= granuleSize - 1
                ? pagesPerGranule - 1 : Int((range.upperBound - granuleStart) / pageSize)
            var bitmap = bitmaps.removeValue(forKey: granule) ?? GranuleBitmap(pageCount: pagesPerGranule)
            bitmap.set(firstPage..<(lastPage + 1), linked: linked)
            if bitmap.linkedCount > 0 { bitmaps[granule] = bitmap }
            guard granule < lastGranule else { break }
            granule += 1
        }
    }
}
