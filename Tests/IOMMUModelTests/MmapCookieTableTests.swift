import Testing

@testable import IOMMUModel

@Suite("MmapCookieTable")
struct MmapCookieTableTests {
    static let inflight = ExportedObjectID(rawValue: 1)
    static let doorbell = ExportedObjectID(rawValue: 2)
    static let window = ExportedObjectID(rawValue: 3)

    @Test func refusesAPageSizeThatIsNotAPowerOfTwo() {
        #expect(throws: MmapCookieError.invalidPageSize(3000)) { _ = try MmapCookieTable(pageSize: 3000) }
    }

    @Test func exportsGetPageAlignedCookiesLowestFirst() throws {
        var table = try MmapCookieTable()
        let first = try table.export(Self.inflight, ExportAttributes(size: 100))
        let second = try table.export(Self.doorbell, ExportAttributes(size: 5000, caching: .writeCombining))
        #expect(first.offset == 0 && first.length == 4096)
        #expect(second.offset == 4096 && second.length == 8192)
        #expect(throws: MmapCookieError.invalidSize(0)) { _ = try table.export(Self.window, ExportAttributes(size: 0)) }
    }

    @Test func askingAgainForTheSameObjectReturnsTheSameCookie() throws {
        var table = try MmapCookieTable()
        let first = try table.export(Self.inflight, ExportAttributes(size: 100))
        _ = try table.export(Self.doorbell, ExportAttributes(size: 100))
        #expect(try table.export(Self.inflight, ExportAttributes(size: 100)) == first)
        #expect(table.cookie(for: Self.inflight, ExportAttributes(size: 100)) == first)
        #expect(table.exportCount == 2)
    }

    @Test func otherAttributesGetAnotherCookie() throws {
        var table = try MmapCookieTable()
        let writable = try table.export(Self.window, ExportAttributes(size: 8192))
        let readOnly = try table.export(Self.window, ExportAttributes(size: 8192, readOnly: true))
        let smaller = try table.export(Self.window, ExportAttributes(size: 4096))
        #expect(Set([writable.offset, readOnly.offset, smaller.offset]).count == 3)
        #expect(table.lookup(offset: readOnly.offset, length: 1)?.attributes.readOnly == true)
    }

    @Test func lookupFindsTheObjectAndTheOffsetInsideItByIntersection() throws {
        var table = try MmapCookieTable()
        _ = try table.export(Self.inflight, ExportAttributes(size: 100))
        let cookie = try table.export(Self.window, ExportAttributes(size: 3 * 4096 + 1))
        let found = try #require(table.lookup(offset: cookie.offset + 4096, length: 8192))
        #expect(found.object == Self.window && found.offsetInObject == 4096 && found.cookie == cookie)
        #expect(table.lookup(offset: cookie.offset, length: cookie.length)?.object == Self.window, "the whole rounded length")
        #expect(table.lookup(offset: cookie.offset, length: cookie.length + 1) == nil, "runs past the export")
        #expect(table.lookup(offset: cookie.offset - 1, length: 2) == nil, "starts in another export")
        #expect(table.lookup(offset: cookie.offset, length: 0) == nil)
        #expect(table.lookup(offset: 1 << 40, length: 1) == nil)
        #expect(table.lookup(offset: .max, length: 2) == nil)
    }

    @Test func revokedOffsetsStayInQuarantineUntilTheMappingsAreGone() throws {
        var table = try MmapCookieTable()
        let first = try table.export(Self.inflight, ExportAttributes(size: 4096))
        try table.revoke(first)
        #expect(table.lookup(offset: first.offset, length: 1) == nil)
        #expect(table.quarantined == [first])
        let again = try table.export(Self.inflight, ExportAttributes(size: 4096))
        #expect(again != first && again.offset == 4096, "a new cookie, not the quarantined offsets")
        #expect(throws: MmapCookieError.unknownCookie(first)) { try table.revoke(first) }
        try table.endQuarantine(first)
        #expect(throws: MmapCookieError.notQuarantined(first)) { try table.endQuarantine(first) }
        let reused = try table.export(Self.doorbell, ExportAttributes(size: 4096))
        #expect(reused.offset == first.offset && reused != first)
        #expect(throws: MmapCookieError.unknownCookie(first)) { try table.revoke(first) }
        #expect(table.lookup(offset: first.offset, length: 1)?.object == Self.doorbell)
    }

    @Test func revokingEveryExportOfAnObject() throws {
        var table = try MmapCookieTable()
        let a = try table.export(Self.window, ExportAttributes(size: 4096))
        _ = try table.export(Self.doorbell, ExportAttributes(size: 4096))
        let b = try table.export(Self.window, ExportAttributes(size: 4096, readOnly: true))
        #expect(table.revokeAll(of: Self.window) == [a, b])
        #expect(table.exportCount == 1 && table.quarantined == [a, b])
    }

    @Test func fixedOffsetsLiveInPreReservedAreas() throws {
        var table = try MmapCookieTable()
        try table.reserveFixedArea(0...(4 * 4096 - 1))
        try table.reserveFixedArea((4 * 4096)...(6 * 4096 - 1))
        let dynamic = try table.export(Self.inflight, ExportAttributes(size: 1))
        #expect(dynamic.offset == 6 * 4096, "dynamic exports never land in fixed areas")
        let bell = try table.export(Self.doorbell, ExportAttributes(size: 4096, caching: .uncached), atFixedOffset: 3 * 4096)
        #expect(bell.offset == 3 * 4096)
        #expect(try table.export(Self.doorbell, ExportAttributes(size: 4096, caching: .uncached), atFixedOffset: 3 * 4096) == bell)
        #expect(throws: MmapCookieError.alreadyExported(bell)) {
            _ = try table.export(Self.doorbell, ExportAttributes(size: 4096, caching: .uncached), atFixedOffset: 0)
        }
        #expect(throws: MmapCookieError.offsetsUnavailable((2 * 4096)...(4 * 4096 - 1))) {
            _ = try table.export(Self.window, ExportAttributes(size: 8192), atFixedOffset: 2 * 4096)
        }
        #expect(throws: MmapCookieError.offsetsUnavailable((5 * 4096)...(7 * 4096 - 1))) {
            _ = try table.export(Self.window, ExportAttributes(size: 8192), atFixedOffset: 5 * 4096)
        }
        #expect(throws: MmapCookieError.unaligned(100)) { _ = try table.export(Self.window, ExportAttributes(size: 1), atFixedOffset: 100) }
        try table.revoke(bell)
        #expect(throws: MmapCookieError.offsetsUnavailable((3 * 4096)...(4 * 4096 - 1))) {
            _ = try table.export(Self.inflight, ExportAttributes(size: 4096, readOnly: true), atFixedOffset: 3 * 4096)
        }
        try table.endQuarantine(bell)
        // The offsets went back to the fixed area, and two adjacent fixed areas hold one export
        // across their boundary.
        let spanning = try table.export(Self.window, ExportAttributes(size: 3 * 4096), atFixedOffset: 2 * 4096)
        #expect(spanning.range == (2 * 4096)...(5 * 4096 - 1))
    }

    @Test func fixedAreasMustBeAlignedFreeAndInsideTheWindow() throws {
        var table = try MmapCookieTable(window: 0...(1 << 20 - 1))
        #expect(throws: MmapCookieError.unaligned(1)) { try table.reserveFixedArea(1...4096) }
        #expect(throws: MmapCookieError.unaligned(4097)) { try table.reserveFixedArea(0...4096) }
        #expect(throws: MmapCookieError.outsideWindow((1 << 20)...((1 << 20) + 4095))) { try table.reserveFixedArea((1 << 20)...((1 << 20) + 4095)) }
        _ = try table.export(Self.inflight, ExportAttributes(size: 1))
        #expect(throws: MmapCookieError.offsetsUnavailable(0...8191)) { try table.reserveFixedArea(0...8191) }
    }

    @Test func aWindowAtTheTopOfTheSpace() throws {
        var table = try MmapCookieTable(window: (UInt64.max - 3 * 4096 + 1)...UInt64.max)
        let a = try table.export(Self.inflight, ExportAttributes(size: 2 * 4096))
        let b = try table.export(Self.doorbell, ExportAttributes(size: 4096))
        #expect(b.range.upperBound == .max)
        #expect(throws: MmapCookieError.offsetSpaceFull(length: 4096)) { _ = try table.export(Self.window, ExportAttributes(size: 1)) }
        #expect(throws: MmapCookieError.invalidSize(.max)) { _ = try table.export(Self.window, ExportAttributes(size: .max)) }
        #expect(table.lookup(offset: .max, length: 1)?.object == Self.doorbell)
        #expect(table.lookup(offset: .max, length: 2) == nil)
        #expect(table.lookup(offset: a.offset, length: 3 * 4096) == nil)
    }
}
