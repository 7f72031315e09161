@testable import IOMMUModel

extension IOMMUModelFuzz {
    /// The plain model of an `MmapCookieTable`: its slots (fixed areas, exports, quarantined
    /// exports) as a sorted list, each request checked in the table's documented order, serials
    /// counted up from 1.
    struct CookieReference {
        let pageSize: UInt64
        let window: ClosedRange<UInt64>
        private(set) var slots = RangeReference<CookieSlot>()
        private var lastSerial: UInt64 = 0

        init(pageSize: UInt64, window: ClosedRange<UInt64>) {
            self.pageSize = pageSize
            self.window = window
        }

        static func cookie(_ range: ClosedRange<UInt64>, _ record: ExportRecord) -> MmapCookie {
            MmapCookie(offset: range.lowerBound, length: range.upperBound - range.lowerBound + 1, serial: record.serial)
        }

        /// The live export of `key`, if any.
        func live(_ key: ExportKey) -> MmapCookie? {
            for slot in slots.entries {
                if case .export(let record) = slot.value, record.object == key.object, record.attributes == key.attributes {
                    return Self.cookie(slot.range, record)
                }
            }
            return nil
        }

        var liveCount: Int {
            slots.entries.count { if case .export = $0.value { true } else { false } }
        }

        var quarantined: [MmapCookie] {
            slots.entries.compactMap { slot in
                if case .quarantined(let record) = slot.value { Self.cookie(slot.range, record) } else { nil }
            }
        }

        /// `size` rounded up to whole pages; nil for 0 or when rounding passes 2^64.
        func rounded(_ size: UInt64) -> UInt64? {
            guard size > 0, UInt128(size) + UInt128(pageSize) - 1 <= UInt128(UInt64.max) else { return nil }
            return (size + (pageSize - 1)) / pageSize * pageSize
        }

        private mutating func add(_ key: ExportKey, at range: ClosedRange<UInt64>, isFixed: Bool) -> MmapCookie {
            lastSerial += 1
            let record = ExportRecord(object: key.object, attributes: key.attributes, serial: lastSerial, isFixed: isFixed)
            slots.store(range, .export(record))
            return Self.cookie(range, record)
        }

        mutating func export(_ key: ExportKey) -> Result<MmapCookie, MmapCookieError> {
            if let existing = live(key) { return .success(existing) }
            guard let length = rounded(key.attributes.size) else { return .failure(.invalidSize(key.attributes.size)) }
            guard let range = slots.lowestFree(size: length, alignment: pageSize, within: window) else {
                return .failure(.offsetSpaceFull(length: length))
            }
            return .success(add(key, at: range, isFixed: false))
        }

        mutating func export(_ key: ExportKey, at offset: UInt64) -> Result<MmapCookie, MmapCookieError> {
            if let existing = live(key) {
                return existing.offset == offset ? .success(existing) : .failure(.alreadyExported(existing))
            }
            if offset % pageSize != 0 { return .failure(.unaligned(offset)) }
            guard let length = rounded(key.attributes.size), UInt128(offset) + UInt128(length) - 1 <= UInt128(UInt64.max) else {
                return .failure(.invalidSize(key.attributes.size))
            }
            let range = offset...(offset + (length - 1))
            // Fixed areas must cover every byte, one after the other.
            var next = UInt128(offset)
            for slot in slots.entries(intersecting: range) {
                guard slot.value == .fixedArea, UInt128(slot.range.lowerBound) <= next else { return .failure(.offsetsUnavailable(range)) }
                next = UInt128(slot.range.upperBound) + 1
            }
            guard next > UInt128(range.upperBound) else { return .failure(.offsetsUnavailable(range)) }
            return .success(add(key, at: range, isFixed: true))
        }

        mutating func reserveFixedArea(_ range: ClosedRange<UInt64>) -> MmapCookieError? {
            if range.lowerBound % pageSize != 0 { return .unaligned(range.lowerBound) }
            if range.upperBound % pageSize != pageSize - 1 { return .unaligned(range.upperBound &+ 1) }
            if range.lowerBound < window.lowerBound || range.upperBound > window.upperBound { return .outsideWindow(range) }
            if slots.firstEntry(intersecting: range) != nil { return .offsetsUnavailable(range) }
            slots.store(range, .fixedArea)
            return nil
        }

        func lookup(offset: UInt64, length: UInt64) -> MmapCookieLookup? {
            guard length > 0, UInt128(offset) + UInt128(length) - 1 <= UInt128(UInt64.max),
                  let slot = slots.lookup(offset), case .export(let record) = slot.value,
                  offset + (length - 1) <= slot.range.upperBound else { return nil }
            return MmapCookieLookup(cookie: Self.cookie(slot.range, record), object: record.object,
                                    attributes: record.attributes, offsetInObject: offset - slot.range.lowerBound)
        }

        mutating func revoke(_ cookie: MmapCookie) -> MmapCookieError? {
            guard let slot = slots.lookup(cookie.offset), case .export(let record) = slot.value, record.serial == cookie.serial else {
                return .unknownCookie(cookie)
            }
            slots.store(slot.range, .quarantined(record))
            return nil
        }

        /// Revokes every live export of `object`; returns their cookies by offset.
        mutating func revokeAll(of object: ExportedObjectID) -> [MmapCookie] {
            let revoked = slots.entries.compactMap { slot -> MmapCookie? in
                if case .export(let record) = slot.value, record.object == object { Self.cookie(slot.range, record) } else { nil }
            }
            for cookie in revoked { _ = revoke(cookie) }
            return revoked
        }

        mutating func endQuarantine(_ cookie: MmapCookie) -> MmapCookieError? {
            guard let slot = slots.lookup(cookie.offset), case .quarantined(let record) = slot.value, record.serial == cookie.serial else {
                return .notQuarantined(cookie)
            }
            if record.isFixed { slots.store(slot.range, .fixedArea) } else { slots.erase(slot.range) }
            return nil
        }
    }
}
