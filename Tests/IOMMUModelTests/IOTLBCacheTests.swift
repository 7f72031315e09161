import Testing

@testable import IOMMUModel

@Suite("IOTLB last-hit cache")
struct IOTLBCacheTests {
    static func translate(_ cache: inout IOTLBCache, _ iotlb: IOTLB, iova: UInt64, length: UInt64, access: IOMMUAccess = .read)
        -> (IOTLBTranslation, [IOTLBSegment])
    {
        translated { cache.translate(iotlb, iova: iova, length: length, access: access, into: $0) }
    }

    @Test func remembersTheEntryOfTheFirstByteAndAnswersInsideIt() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x10000, size: 0x10000, userAddress: 0x500000, permission: .readWrite)
        var cache = IOTLBCache()
        #expect(Self.translate(&cache, iotlb, iova: 0x10000, length: 0x1000).1 == [segment(0x500000, 0x1000)])
        #expect(cache.generation == iotlb.generation && cache.first == 0x10000 && cache.last == 0x1FFFF)
        #expect(Self.translate(&cache, iotlb, iova: 0x1F000, length: 0x1000, access: .write).1 == [segment(0x50F000, 0x1000)])
    }

    @Test func neverStaleAfterAnInvalidation() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x10000, size: 0x10000, userAddress: 0x500000, permission: .readWrite)
        var cache = IOTLBCache()
        _ = Self.translate(&cache, iotlb, iova: 0x10000, length: 0x1000)
        iotlb.invalidate(iova: 0x18000, size: 0x1000)
        #expect(Self.translate(&cache, iotlb, iova: 0x18000, length: 0x10).0 == .miss(iova: 0x18000))
        #expect(Self.translate(&cache, iotlb, iova: 0x17FF0, length: 0x20).0 == .miss(iova: 0x18000))
    }

    @Test func neverStaleAfterAnUpdateThatRemaps() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0x10000, size: 0x10000, userAddress: 0x500000, permission: .readWrite)
        var cache = IOTLBCache()
        _ = Self.translate(&cache, iotlb, iova: 0x10000, length: 0x1000)
        try iotlb.update(iova: 0x10000, size: 0x10000, userAddress: 0x900000, permission: .read)
        #expect(Self.translate(&cache, iotlb, iova: 0x10000, length: 0x10).1 == [segment(0x900000, 0x10)])
        #expect(Self.translate(&cache, iotlb, iova: 0x10000, length: 0x10, access: .write).0 == .permissionFault(iova: 0x10000, needed: .write))
    }

    @Test func notFooledByCopiesChangedSeparately() throws {
        var original = IOTLB()
        try original.update(iova: 0, size: 0x1000, userAddress: 0xA000, permission: .read)
        var left = original
        var right = original
        try left.update(iova: 0x1000, size: 0x1000, userAddress: 0xB000, permission: .read)
        try right.update(iova: 0x1000, size: 0x1000, userAddress: 0xC000, permission: .read)
        var cache = IOTLBCache()
        #expect(Self.translate(&cache, left, iova: 0x1000, length: 8).1 == [segment(0xB000, 8)])
        #expect(Self.translate(&cache, right, iova: 0x1000, length: 8).1 == [segment(0xC000, 8)])
        #expect(Self.translate(&cache, original, iova: 0x1000, length: 8).0 == .miss(iova: 0x1000))
    }

    @Test func checksThePermissionOnAHit() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0, size: 0x1000, userAddress: 0xA000, permission: .read)
        var cache = IOTLBCache()
        _ = Self.translate(&cache, iotlb, iova: 0, length: 8)
        #expect(Self.translate(&cache, iotlb, iova: 0, length: 8, access: .write).0 == .permissionFault(iova: 0, needed: .write))
    }

    @Test func buffersLeavingTheCachedEntryGoToTheIOTLB() throws {
        var iotlb = IOTLB()
        try iotlb.update(iova: 0, size: 0x1000, userAddress: 0xA000, permission: .read)
        try iotlb.update(iova: 0x1000, size: 0x1000, userAddress: 0xF000, permission: .read)
        var cache = IOTLBCache()
        _ = Self.translate(&cache, iotlb, iova: 0, length: 8)
        #expect(Self.translate(&cache, iotlb, iova: 0xFF0, length: 0x20).1 == [segment(0xAFF0, 0x10), segment(0xF000, 0x10)])
        #expect(Self.translate(&cache, iotlb, iova: 0x2000, length: 1).0 == .miss(iova: 0x2000))
    }
}
