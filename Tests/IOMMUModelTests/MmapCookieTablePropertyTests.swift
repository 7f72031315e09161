import PropertyBased
import Testing

@testable import IOMMUModel

/// Random export / fixed export / reserve / revoke / end-quarantine / lookup sequences against a
/// plain list of slots, compared after every step.
@Suite("MmapCookieTable against a list of slots")
struct MmapCookieTablePropertyTests {
    typealias Operation = (kind: UInt8, a: UInt64, b: UInt64)
    static let page: UInt64 = 4096
    static let pages: UInt64 = 32

    enum Kind: Equatable {
        case fixedArea
        case export(ExportKey, serial: UInt64, fixed: Bool)
        case quarantined(ExportKey, serial: UInt64, fixed: Bool)
    }

    struct Model {
        let window: ClosedRange<UInt64>
        var slots: [(range: ClosedRange<UInt64>, kind: Kind)] = []
        var lastSerial: UInt64 = 0

        func live(_ key: ExportKey) -> MmapCookie? {
            for slot in slots {
                if case .export(key, let serial, _) = slot.kind { return MmapCookie(range: slot.range, serial: serial) }
            }
            return nil
        }

        func free(_ range: ClosedRange<UInt64>) -> Bool { !slots.contains { $0.range.overlaps(range) } }

        static func rounded(_ size: UInt64) -> UInt64? {
            guard size > 0, size <= UInt64.max - (page - 1) else { return nil }
            return (size + page - 1) / page * page
        }

        mutating func add(_ key: ExportKey, _ range: ClosedRange<UInt64>, fixed: Bool) -> MmapCookie {
            lastSerial += 1
            slots.append((range, .export(key, serial: lastSerial, fixed: fixed)))
            return MmapCookie(range: range, serial: lastSerial)
        }

        mutating func export(_ key: ExportKey) -> Result<MmapCookie, MmapCookieError> {
            if let existing = live(key) { return .success(existing) }
            guard let length = Self.rounded(key.attributes.size) else { return .failure(.invalidSize(key.attributes.size)) }
            var start = (UInt128(window.lowerBound) + UInt128(page) - 1) / UInt128(page) * UInt128(page)
            while start + UInt128(length) - 1 <= UInt128(window.upperBound) {
                let range = UInt64(start)...UInt64(start + UInt128(length) - 1)
                if free(range) { return .success(add(key, range, fixed: false)) }
                start += UInt128(page)
            }
            return .failure(.offsetSpaceFull(length: length))
        }

        mutating func export(_ key: ExportKey, at offset: UInt64) -> Result<MmapCookie, MmapCookieError> {
            if let existing = live(key) { return existing.offset == offset ? .success(existing) : .failure(.alreadyExported(existing)) }
            guard offset % page == 0 else { return .failure(.unaligned(offset)) }
            guard let length = Self.rounded(key.attributes.size), !offset.addingReportingOverflow(length - 1).overflow else {
                return .failure(.invalidSize(key.attributes.size))
            }
            let range = offset...(offset + (length - 1))
            // Every page must be inside some fixed area.
            let covered = stride(from: UInt128(offset), to: UInt128(offset) + UInt128(length), by: Int(page)).allSatisfy { page in
                slots.contains { $0.kind == .fixedArea && $0.range.contains(UInt64(page)) }
            }
            guard covered else { return .failure(.offsetsUnavailable(range)) }
            // Cut the fixed areas around the export.
            var kept: [(range: ClosedRange<UInt64>, kind: Kind)] = []
            for slot in slots {
                guard slot.range.overlaps(range) else { kept.append(slot); continue }
                if slot.range.lowerBound < range.lowerBound { kept.append((slot.range.lowerBound...(range.lowerBound - 1), .fixedArea)) }
                if slot.range.upperBound > range.upperBound { kept.append(((range.upperBound + 1)...slot.range.upperBound, .fixedArea)) }
            }
            slots = kept
            return .success(add(key, range, fixed: true))
        }

        mutating func reserveFixedArea(_ range: ClosedRange<UInt64>) -> MmapCookieError? {
            if range.lowerBound % page != 0 { return .unaligned(range.lowerBound) }
            if range.upperBound % page != page - 1 { return .unaligned(range.upperBound &+ 1) }
            if !(window.lowerBound <= range.lowerBound && range.upperBound <= window.upperBound) { return .outsideWindow(range) }
            guard free(range) else { return .offsetsUnavailable(range) }
            slots.append((range, .fixedArea))
            return nil
        }

        mutating func revoke(_ cookie: MmapCookie) -> MmapCookieError? {
            guard let index = slots.firstIndex(where: { $0.range.contains(cookie.offset) }),
                case .export(let key, let serial, let fixed) = slots[index].kind, serial == cookie.serial
            else { return .unknownCookie(cookie) }
            slots[index].kind = .quarantined(key, serial: serial, fixed: fixed)
            return nil
        }

        mutating func endQuarantine(_ cookie: MmapCookie) -> MmapCookieError? {
            guard let index = slots.firstIndex(where: { $0.range.contains(cookie.offset) }),
                case .quarantined(_, let serial, let fixed) = slots[index].kind, serial == cookie.serial
            else { return .notQuarantined(cookie) }
            if fixed { slots[index].kind = .fixedArea } else { slots.remove(at: index) }
            return nil
        }

        func lookup(offset: UInt64, length: UInt64) -> MmapCookieLookup? {
            guard length > 0, UInt128(offset) + UInt128(length) - 1 <= UInt128(UInt64.max) else { return nil }
            for slot in slots where slot.range.contains(offset) {
                guard case .export(let key, let serial, _) = slot.kind, offset + (length - 1) <= slot.range.upperBound else { return nil }
                return MmapCookieLookup(cookie: MmapCookie(range: slot.range, serial: serial), object: key.object,
                                        attributes: key.attributes, offsetInObject: offset - slot.range.lowerBound)
            }
            return nil
        }
    }

    static let sizes: [UInt64] = [1, 4096, 4097, 3 * 4096, 10_000, 0, .max]
    static let operations = zip(Gen.uint8(), Gen.uint64(), Gen.uint64()).map { Operation($0, $1, $2) }.array(of: 1...2000)

    @Test func randomSequencesMatchTheModel() async {
        var tally: [String: Int] = [:]
        await propertyCheck(count: 16, input: zip(Gen.bool(), Self.operations)) { atTheTop, operations in
            let size = Self.pages * Self.page
            let window = atTheTop ? (UInt64.max - size + 1)...UInt64.max : (2 * Self.page + 7)...(2 * Self.page + size + 6)
            var table = try! MmapCookieTable(pageSize: Self.page, window: window)
            var model = Model(window: window)
            var seen: [MmapCookie] = []
            for (step, operation) in operations.enumerated() {
                let key = ExportKey(
                    object: ExportedObjectID(rawValue: operation.a % 4),
                    attributes: ExportAttributes(size: Self.sizes[Int(operation.b % UInt64(Self.sizes.count))],
                                                 readOnly: operation.a & 8 != 0, caching: operation.a & 16 != 0 ? .uncached : .cached))
                // Offsets around the window, mostly page-aligned, mostly in its upper half (where
                // fixed areas have room: dynamic exports fill the window from below).
                let firstPage = operation.b & 0x300 == 0 ? 0 : Self.pages / 2
                let offset = window.lowerBound & ~(Self.page - 1) &+ (firstPage + (operation.b >> 10) % (Self.pages / 2 + 4)) &* Self.page
                    &+ (operation.b & 0xF0 == 0 ? 3 : 0)
                let label: String
                let agrees: Bool
                switch operation.kind % 10 {
                case 0:
                    let actual = Result { () throws(MmapCookieError) in try table.export(key.object, key.attributes) }
                    label = "export"
                    agrees = actual == model.export(key)
                    if case .success(let cookie) = actual { seen.append(cookie) }
                case 1, 2:
                    let actual = Result { () throws(MmapCookieError) in try table.export(key.object, key.attributes, atFixedOffset: offset) }
                    label = (try? actual.get()) == nil ? "fixed refused" : "fixed export"
                    agrees = actual == model.export(key, at: offset)
                    if case .success(let cookie) = actual { seen.append(cookie) }
                case 3:
                    let last = offset &+ ((operation.a >> 8) % 4 + 1) * Self.page &- (operation.a & 0x80 == 0 ? 1 : 0)
                    let range = min(offset, last)...max(offset, last)
                    let actual = Result { () throws(MmapCookieError) in try table.reserveFixedArea(range) }
                    label = "reserve fixed"
                    agrees = actual.error == model.reserveFixedArea(range)
                case 4, 5:
                    guard !seen.isEmpty else { continue }
                    let cookie = seen[Int(operation.a % UInt64(seen.count))]
                    let actual = Result { () throws(MmapCookieError) in try table.revoke(cookie) }
                    label = actual.error == nil ? "revoke" : "revoke refused"
                    agrees = actual.error == model.revoke(cookie)
                case 6, 7:
                    guard !seen.isEmpty else { continue }
                    let cookie = seen[Int(operation.a % UInt64(seen.count))]
                    let actual = Result { () throws(MmapCookieError) in try table.endQuarantine(cookie) }
                    label = actual.error == nil ? "end quarantine" : "end quarantine refused"
                    agrees = actual.error == model.endQuarantine(cookie)
                default:
                    let length = operation.a % (3 * Self.page) + (operation.a & 0x10000 == 0 ? 0 : UInt64.max / 2)
                    let found = table.lookup(offset: offset, length: length)
                    label = found == nil ? "lookup nothing" : "lookup"
                    agrees = found == model.lookup(offset: offset, length: length)
                }
                tally[label, default: 0] += 1
                guard agrees else {
                    Issue.record("step \(step) \(operation): \(label) disagrees with the model")
                    return
                }
                let live = model.slots.compactMap { slot -> MmapCookie? in
                    if case .export(_, let serial, _) = slot.kind { return MmapCookie(range: slot.range, serial: serial) }
                    return nil
                }
                let quarantined = model.slots.compactMap { slot -> MmapCookie? in
                    if case .quarantined(_, let serial, _) = slot.kind { return MmapCookie(range: slot.range, serial: serial) }
                    return nil
                }
                guard table.exportCount == live.count, table.quarantined == quarantined.sorted(by: { $0.offset < $1.offset }) else {
                    Issue.record("step \(step) \(operation): exports or quarantine differ")
                    return
                }
            }
        }
        for label in ["export", "fixed export", "reserve fixed", "revoke", "end quarantine", "lookup", "lookup nothing"] {
            #expect(tally[label, default: 0] >= 50, "\(label): \(tally)")
        }
    }
}

extension MmapCookie {
    init(range: ClosedRange<UInt64>, serial: UInt64) {
        self.init(offset: range.lowerBound, length: range.upperBound - range.lowerBound + 1, serial: serial)
    }
}

extension Result {
    /// The failure, if any.
    var error: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
