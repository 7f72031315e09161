import Testing

@testable import IOMMUModel

@Suite("TwoStepMapper")
struct TwoStepMapperTests {
    static let mib: UInt64 = 1 << 20
    static let page: UInt64 = 4096

    @Test func refusesGeometryThatIsNotPowersOfTwo() {
        #expect(throws: TwoStepMappingError.invalidGeometry(granuleSize: 3 << 20, pageSize: 4096)) {
            _ = try TwoStepMapper(window: 0...UInt64.max, granuleSize: 3 << 20)
        }
        #expect(throws: TwoStepMappingError.invalidGeometry(granuleSize: 2048, pageSize: 4096)) {
            _ = try TwoStepMapper(window: 0...UInt64.max, granuleSize: 2048)
        }
        #expect(throws: TwoStepMappingError.invalidGeometry(granuleSize: 1 << 40, pageSize: 4096)) {
            _ = try TwoStepMapper(window: 0...UInt64.max, granuleSize: 1 << 40)
        }
    }

    @Test func reservesWholeAlignedGranulesLowestFirst() throws {
        var mapper = try TwoStepMapper(window: (1 * Self.mib + 5)...(64 * Self.mib - 1))
        let first = try mapper.reserve(size: 1)
        #expect(first.range == (2 * Self.mib)...(4 * Self.mib - 1))
        let second = try mapper.reserve(size: 3 * Self.mib)
        #expect(second.range == (4 * Self.mib)...(8 * Self.mib - 1))
        #expect(try mapper.release(first).isEmpty)
        let third = try mapper.reserve(size: 2 * Self.mib)
        #expect(third.range == first.range && third.id != first.id)
    }

    @Test func runsOutOfWindowWithAClearError() throws {
        var mapper = try TwoStepMapper(window: 0...(4 * Self.mib - 1))
        _ = try mapper.reserve(size: 3 * Self.mib)
        #expect(throws: TwoStepMappingError.outOfSpace(size: 2 * Self.mib)) { _ = try mapper.reserve(size: 1) }
        #expect(throws: TwoStepMappingError.emptySize) { _ = try mapper.reserve(size: 0) }
        #expect(throws: TwoStepMappingError.wrapsAddressSpace(start: 0, size: .max)) { _ = try mapper.reserve(size: .max) }
    }

    @Test func linkProducesOneUpdateAndSetsTheBitmap() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1))
        let reservation = try mapper.reserve(size: 2 * Self.mib)
        let messages = try mapper.link(iova: 0x3000, size: 0x3000, userAddress: 0x7F00_0000_0000, permission: .read)
        #expect(messages == [.update(iova: 0x3000, size: 0x3000, userAddress: 0x7F00_0000_0000, permission: .read)])
        let bitmap = try #require(mapper.bitmap(ofGranuleContaining: reservation.range.lowerBound))
        #expect(bitmap.pageCount == 512 && bitmap.linkedCount == 3 && bitmap.linkedPages == [3, 4, 5])
    }

    @Test func linkingPagesJoinsRunsWhoseUserAddressesContinue() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1))
        _ = try mapper.reserve(size: 1)
        let messages = try mapper.link(iova: 0x10000, pages: [0xA000, 0xB000, 0x5000, 0x6000, 0x7000, 0x1000], permission: .readWrite)
        #expect(messages == [
            .update(iova: 0x10000, size: 0x2000, userAddress: 0xA000, permission: .readWrite),
            .update(iova: 0x12000, size: 0x3000, userAddress: 0x5000, permission: .readWrite),
            .update(iova: 0x15000, size: 0x1000, userAddress: 0x1000, permission: .readWrite),
        ])
        #expect(mapper.bitmap(ofGranuleContaining: 0)?.linkedPages == Array(16...21))
    }

    @Test func linkRefusesWhatASplitDMAAPIRefuses() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1))
        let reservation = try mapper.reserve(size: 1)
        _ = try mapper.link(iova: 0x4000, size: 0x1000, userAddress: 0, permission: .read)
        #expect(throws: TwoStepMappingError.alreadyLinked(iova: 0x4000)) {
            _ = try mapper.link(iova: 0x2000, size: 0x4000, userAddress: 0, permission: .read)
        }
        #expect(throws: TwoStepMappingError.unaligned(0x2001)) { _ = try mapper.link(iova: 0x2001, size: 0x1000, userAddress: 0, permission: .read) }
        #expect(throws: TwoStepMappingError.unaligned(0x10)) { _ = try mapper.link(iova: 0x2000, size: 0x1000, userAddress: 0x10, permission: .read) }
        #expect(throws: TwoStepMappingError.notReserved(iova: reservation.range.upperBound + 1)) {
            _ = try mapper.link(iova: reservation.range.upperBound - 0xFFF, size: 0x2000, userAddress: 0, permission: .read)
        }
        #expect(throws: TwoStepMappingError.notReserved(iova: 32 * Self.mib)) {
            _ = try mapper.link(iova: 32 * Self.mib, size: 0x1000, userAddress: 0, permission: .read)
        }
        #expect(throws: TwoStepMappingError.invalidPermission(rawValue: 0)) { _ = try mapper.link(iova: 0, size: 0x1000, userAddress: 0, permission: []) }
        #expect(throws: TwoStepMappingError.wrapsAddressSpace(start: UInt64.max - 0xFFF, size: 0x2000)) {
            _ = try mapper.link(iova: 0, size: 0x2000, userAddress: UInt64.max - 0xFFF, permission: .read)
        }
        #expect(mapper.links.count == 1)
    }

    @Test func unlinkingASubRangeInvalidatesOnlyTheLinkedRuns() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1))
        _ = try mapper.reserve(size: 1)
        _ = try mapper.link(iova: 0, size: 16 * Self.page, userAddress: 0x100000, permission: .read)
        #expect(try mapper.unlink(iova: 4 * Self.page, size: 4 * Self.page) == [.invalidate(iova: 4 * Self.page, size: 4 * Self.page)])
        #expect(mapper.links.lookup(8 * Self.page)?.value.userAddress == 0x108000, "the tail keeps its own user address")
        #expect(try mapper.unlink(iova: 0, size: 32 * Self.page) == [
            .invalidate(iova: 0, size: 4 * Self.page), .invalidate(iova: 8 * Self.page, size: 8 * Self.page),
        ])
        #expect(mapper.bitmap(ofGranuleContaining: 0) == nil, "a granule with nothing linked has no bitmap")
        #expect(try mapper.unlink(iova: 0, size: Self.page).isEmpty)
    }

    @Test func separateLinksThatTouchAreInvalidatedAsOneRun() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1))
        _ = try mapper.reserve(size: 1)
        _ = try mapper.link(iova: 0, size: Self.page, userAddress: 0x9000, permission: .read)
        _ = try mapper.link(iova: Self.page, size: Self.page, userAddress: 0x1000, permission: .write)
        #expect(try mapper.unlink(iova: 0, size: 2 * Self.page) == [.invalidate(iova: 0, size: 2 * Self.page)])
    }

    @Test func replacingALinkedPageInvalidatesThenUpdates() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1))
        _ = try mapper.reserve(size: 1)
        _ = try mapper.link(iova: 0, size: 4 * Self.page, userAddress: 0x100000, permission: .read)
        #expect(try mapper.replace(iova: 2 * Self.page, userAddress: 0x900000, permission: .readWrite) == [
            .invalidate(iova: 2 * Self.page, size: Self.page),
            .update(iova: 2 * Self.page, size: Self.page, userAddress: 0x900000, permission: .readWrite),
        ])
        #expect(mapper.links.lookup(3 * Self.page)?.value.userAddress == 0x103000)
        #expect(mapper.bitmap(ofGranuleContaining: 0)?.linkedCount == 4)
        #expect(throws: TwoStepMappingError.notLinked(iova: 4 * Self.page)) {
            _ = try mapper.replace(iova: 4 * Self.page, userAddress: 0, permission: .read)
        }
    }

    @Test func releaseInvalidatesEverythingLinkedAndForgetsTheReservation() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1), granuleSize: 64 << 10)
        let reservation = try mapper.reserve(size: 256 << 10)
        _ = try mapper.link(iova: 60 << 10, size: 8 << 10, userAddress: 0, permission: .read)  // spans two granules
        #expect(mapper.bitmap(ofGranuleContaining: 0)?.linkedPages == [15])
        #expect(mapper.bitmap(ofGranuleContaining: 64 << 10)?.linkedPages == [0])
        #expect(try mapper.release(reservation) == [.invalidate(iova: 60 << 10, size: 8 << 10)])
        #expect(mapper.links.isEmpty && mapper.reservationCount == 0 && mapper.bitmap(ofGranuleContaining: 0) == nil)
        #expect(throws: TwoStepMappingError.unknownReservation(reservation)) { _ = try mapper.release(reservation) }
        let reused = try mapper.reserve(size: 256 << 10)
        #expect(reused.range == reservation.range)
        #expect(throws: TwoStepMappingError.unknownReservation(reservation)) { _ = try mapper.release(reservation) }
    }

    @Test func aWindowAtTheTopOfTheSpace() throws {
        var mapper = try TwoStepMapper(window: (UInt64.max - 4 * Self.mib + 1)...UInt64.max)
        _ = try mapper.reserve(size: 2 * Self.mib)
        let top = try mapper.reserve(size: 2 * Self.mib)
        #expect(top.range.upperBound == .max)
        let lastPage = UInt64.max - Self.page + 1
        #expect(try mapper.link(iova: lastPage, pages: [UInt64.max - Self.page + 1], permission: .read)
            == [.update(iova: lastPage, size: Self.page, userAddress: lastPage, permission: .read)])
        #expect(mapper.bitmap(ofGranuleContaining: .max)?.linkedPages == [511])
        #expect(try mapper.release(top) == [.invalidate(iova: lastPage, size: Self.page)])
    }

    @Test func messagesReplayedIntoAnIOTLBGiveTheLinkedTranslations() throws {
        var mapper = try TwoStepMapper(window: 0...(64 * Self.mib - 1))
        var iotlb = IOTLB()
        let reservation = try mapper.reserve(size: 4 * Self.mib)
        var messages = try mapper.link(iova: 0, size: 8 * Self.page, userAddress: 0x200000, permission: .read)
        messages += try mapper.link(iova: 2 * Self.mib - Self.page, pages: [0x50000, 0x51000, 0x70000], permission: .write)
        messages += try mapper.unlink(iova: 2 * Self.page, size: Self.page)
        messages += try mapper.replace(iova: 5 * Self.page, userAddress: 0x300000, permission: .readWrite)
        for message in messages { try iotlb.apply(message) }
        #expect(iotlb.translated(iova: 0, length: 3 * Self.page, access: .read).0 == .miss(iova: 2 * Self.page))
        #expect(iotlb.translated(iova: 4 * Self.page, length: 2 * Self.page, access: .read).1
            == [segment(0x204000, Self.page), segment(0x300000, Self.page)])
        #expect(iotlb.translated(iova: 2 * Self.mib - Self.page, length: 3 * Self.page, access: .write).1
            == [segment(0x50000, 2 * Self.page), segment(0x70000, Self.page)])
        for message in try mapper.release(reservation) { try iotlb.apply(message) }
        #expect(iotlb.entries.isEmpty)
    }
}
