/// The back end's mmap offset space: each exported object gets a page-aligned offset cookie,
/// as iommufd and VFIO hand out mmap offsets kept in a maple tree.
///
/// Exports are allocated lowest-first in ``window``; asking again for the same object with the
/// same attributes returns the same cookie, other attributes get another one. A lookup finds
/// the export an (offset, length) lies in by intersection. Revoking an export puts its offsets
/// in quarantine: a front end may still have them mapped, so they are not handed out again
/// until the caller says the mappings are gone (``endQuarantine(_:)``), the way the kernel
/// keeps an mmap entry until the last VMA using it is closed. Fixed areas, pre-reserved with
/// ``reserveFixedArea(_:)``, hold exports that need a stable layout at offsets the caller
/// chooses; dynamic exports never land there.
///
/// Invariants: slots (exports, quarantined exports, fixed areas) never overlap; every export
/// and quarantined export is page-aligned and a whole number of pages; an (object, attributes)
/// pair has at most one live export; a cookie's serial is unique in the table, so a stale
/// cookie never names a later export at the same offset.
public struct MmapCookieTable: Sendable {
    /// The mapping unit: offsets and lengths are multiples of it (a power of two).
    public let pageSize: UInt64
    /// The offsets dynamic exports are allocated from.
    public let window: ClosedRange<UInt64>

    private var slots = RangeStore<CookieSlot>()
    private var cookies: [ExportKey: MmapCookie] = [:]
    private var lastSerial: UInt64 = 0

    /// A table of `pageSize` pages allocating in `window`. The default window is what an
    /// `off_t` can name: mmap offsets are signed 64-bit.
    ///
    /// - Throws: ``MmapCookieError/invalidPageSize(_:)``.
    public init(pageSize: UInt64 = 4096, window: ClosedRange<UInt64> = 0...UInt64(Int64.max)) throws(MmapCookieError) {
        guard pageSize.nonzeroBitCount == 1 else { throw .invalidPageSize(pageSize) }
        self.pageSize = pageSize
        self.window = window
    }

    /// The live exports.
    public var exportCount: Int { cookies.count }

    /// The live export of `object` with `attributes`, if any.
    public func cookie(for object: ExportedObjectID, _ attributes: ExportAttributes) -> MmapCookie? {
        cookies[ExportKey(object: object, attributes: attributes)]
    }

    // MARK: Fixed areas

    /// Pre-reserves `range` (page-aligned at both ends, inside the window) for fixed exports.
    ///
    /// - Throws: ``MmapCookieError/unaligned(_:)``, ``MmapCookieError/outsideWindow(_:)``,
    ///   ``MmapCookieError/offsetsUnavailable(_:)`` when anything is there already.
    public mutating func reserveFixedArea(_ range: ClosedRange<UInt64>) throws(MmapCookieError) {
        guard range.lowerBound % pageSize == 0 else { throw .unaligned(range.lowerBound) }
        guard range.upperBound % pageSize == pageSize - 1 else { throw .unaligned(range.upperBound &+ 1) }
        guard window.lowerBound <= range.lowerBound, range.upperBound <= window.upperBound else { throw .outsideWindow(range) }
        do {
            try slots.insert(range, .fixedArea)
        } catch {
            throw .offsetsUnavailable(range)
        }
    }

    // MARK: Exporting

    /// The cookie of `object` exported with `attributes`: the existing one, or a new one at the
    /// lowest free page-aligned offsets of the window.
    ///
    /// - Throws: ``MmapCookieError/invalidSize(_:)``, ``MmapCookieError/offsetSpaceFull(length:)``.
    public mutating func export(_ object: ExportedObjectID, _ attributes: ExportAttributes) throws(MmapCookieError) -> MmapCookie {
        let key = ExportKey(object: object, attributes: attributes)
        if let existing = cookies[key] { return existing }
        let length = try pageRounded(attributes.size)
        guard let range = slots.allocate(size: length, alignment: pageSize, within: window) else {
            throw .offsetSpaceFull(length: length)
        }
        return add(key, at: range, isFixed: false)
    }

    /// The cookie of `object` exported with `attributes` at exactly `offset`, which must lie,
    /// with the whole page-rounded length, in free fixed areas. Asking again with the same
    /// offset returns the same cookie.
    ///
    /// - Throws: ``MmapCookieError/alreadyExported(_:)`` when it is exported elsewhere;
    ///   ``MmapCookieError/unaligned(_:)``, ``MmapCookieError/invalidSize(_:)``,
    ///   ``MmapCookieError/offsetsUnavailable(_:)``.
    public mutating func export(_ object: ExportedObjectID, _ attributes: ExportAttributes, atFixedOffset offset: UInt64) throws(MmapCookieError) -> MmapCookie {
        let key = ExportKey(object: object, attributes: attributes)
        if let existing = cookies[key] {
            guard existing.offset == offset else { throw .alreadyExported(existing) }
            return existing
        }
        guard offset % pageSize == 0 else { throw .unaligned(offset) }
        let length = try pageRounded(attributes.size)
        let (last, overflow) = offset.addingReportingOverflow(length - 1)
        guard !overflow else { throw .invalidSize(attributes.size) }
        let range = offset...last
        // Every byte must be in a free fixed area: the fixed areas met must cover the range
        // without a hole.
        var next: UInt64? = offset  // the first byte not yet covered; nil past the top
        var free = true
        slots.forEach(intersecting: range) { slot, value in
            if value != .fixedArea || next != max(slot.lowerBound, offset) { free = false }
            next = slot.upperBound == UInt64.max ? nil : slot.upperBound + 1
        }
        guard free, next.map({ $0 > last }) ?? true else { throw .offsetsUnavailable(range) }
        return add(key, at: range, isFixed: true)
    }

    /// Records a new export at the free (or fixed-area) `range`.
    private mutating func add(_ key: ExportKey, at range: ClosedRange<UInt64>, isFixed: Bool) -> MmapCookie {
        lastSerial += 1
        let record = ExportRecord(object: key.object, attributes: key.attributes, serial: lastSerial, isFixed: isFixed)
        slots.store(range, .export(record))
        let cookie = MmapCookie(offset: range.lowerBound, length: range.upperBound - range.lowerBound + 1, serial: lastSerial)
        cookies[key] = cookie
        return cookie
    }

    /// `size` rounded up to whole pages.
    private func pageRounded(_ size: UInt64) throws(MmapCookieError) -> UInt64 {
        guard size > 0 else { throw .invalidSize(size) }
        let (padded, overflow) = size.addingReportingOverflow(pageSize - 1)
        guard !overflow else { throw .invalidSize(size) }
        return padded & ~(pageSize - 1)
    }

    // MARK: Looking up

    /// The export that `length` bytes at `offset` lie in (all of them in one export, within its
    /// page-rounded length); nil for a length of 0, a range running past `UInt64.max`, or a
    /// range not wholly inside one live export.
    public func lookup(offset: UInt64, length: UInt64) -> MmapCookieLookup? {
        guard length > 0, !offset.addingReportingOverflow(length - 1).overflow,
            let (range, slot) = slots.lookup(offset), case .export(let record) = slot,
            length - 1 <= range.upperBound - offset
        else { return nil }
        let cookie = MmapCookie(offset: range.lowerBound, length: range.upperBound - range.lowerBound + 1, serial: record.serial)
        return MmapCookieLookup(cookie: cookie, object: record.object, attributes: record.attributes,
                                offsetInObject: offset - range.lowerBound)
    }

    // MARK: Revoking

    /// Revokes a live export: lookups stop finding it, asking for the object again gives a new
    /// cookie, and its offsets stay in quarantine until ``endQuarantine(_:)``.
    ///
    /// - Throws: ``MmapCookieError/unknownCookie(_:)``.
    public mutating func revoke(_ cookie: MmapCookie) throws(MmapCookieError) {
        guard let (range, slot) = slots.lookup(cookie.offset), case .export(let record) = slot, record.serial == cookie.serial else {
            throw .unknownCookie(cookie)
        }
        slots.store(range, .quarantined(record))
        cookies[ExportKey(object: record.object, attributes: record.attributes)] = nil
    }

    /// Revokes every live export of `object` and returns their cookies (for an object that is
    /// going away).
    public mutating func revokeAll(of object: ExportedObjectID) -> [MmapCookie] {
        let revoked = cookies.filter { $0.key.object == object }.map(\.value).sorted { $0.offset < $1.offset }
        for cookie in revoked { try? revoke(cookie) }
        return revoked
    }

    /// The caller knows no mapping of a revoked export remains: its offsets become free again
    /// (or return to their fixed area).
    ///
    /// - Throws: ``MmapCookieError/notQuarantined(_:)``.
    public mutating func endQuarantine(_ cookie: MmapCookie) throws(MmapCookieError) {
        guard let (range, slot) = slots.lookup(cookie.offset), case .quarantined(let record) = slot, record.serial == cookie.serial else {
            throw .notQuarantined(cookie)
        }
        if record.isFixed {
            slots.store(range, .fixedArea)
        } else {
            slots.erase(range)
        }
    }

    /// The exports in quarantine, by offset.
    public var quarantined: [MmapCookie] {
        var result: [MmapCookie] = []
        slots.forEach(intersecting: 0...UInt64.max) { range, slot in
            if case .quarantined(let record) = slot {
                result.append(MmapCookie(offset: range.lowerBound, length: range.upperBound - range.lowerBound + 1, serial: record.serial))
            }
        }
        return result
    }
}
