import Testing
import VhostSystem
import VirtioCore

@Suite struct GuestMemoryTests {
    let page = UInt64(MemoryMapping.pageSize)

    private func region(_ physical: UInt64, _ virtual: UInt64, size: UInt64, fill: UInt8 = 0) throws -> GuestMemoryRegion {
        let fd = try MemFD.create(name: "memory-test", size: size)
        let region = try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(physical),
                                               frontEndVirtualStart: FrontEndVirtualAddress(virtual), size: size, mmapOffset: 0)
        region.hostStart.initializeMemory(as: UInt8.self, repeating: fill, count: Int(size))
        return region
    }

    @Test func emptyMemoryTranslatesNothing() throws {
        let memory = GuestMemory()
        #expect(memory.isEmpty)
        #expect(memory.pointer(gpa(0), length: 1) == nil)
        #expect(memory.pointer(FrontEndVirtualAddress(0), length: 1) == nil)
        withUnsafeTemporaryAllocation(of: BufferSegment.self, capacity: 4) { buffer in
            #expect(memory.segments(gpa(0x1000), length: 16, into: buffer) == .notMapped)
        }
        #expect(memory.region(containing: gpa(0)) == nil)
    }

    @Test func sortsRegionsGivenInAnyOrder() throws {
        let high = try region(0x10_0000, 0x1000_0000, size: page)
        let low = try region(0, 0x2000_0000, size: page)
        let memory = try GuestMemory(regions: [high, low])
        #expect(memory.regions.map(\.guestPhysicalStart) == [gpa(0), gpa(0x10_0000)])
    }

    @Test func rejectsOverlapInGuestPhysicalSpace() throws {
        let first = try region(0, 0x1000_0000, size: 2 * page)
        let second = try region(page, 0x2000_0000, size: page)
        #expect(throws: MemoryError.overlappingRegions(.guestPhysical, first: 0, second: page)) {
            try GuestMemory(regions: [first, second])
        }
    }

    @Test func rejectsOverlapInFrontEndVirtualSpace() throws {
        let first = try region(0, 0x1000_0000, size: 2 * page)
        let second = try region(0x100_0000, 0x1000_0000 + page, size: page)
        #expect(throws: MemoryError.overlappingRegions(.frontEndVirtual, first: 0x1000_0000, second: 0x1000_0000 + page)) {
            try GuestMemory(regions: [first, second])
        }
    }

    @Test func rejectsAddingAnOverlappingRegion() throws {
        let memory = try GuestMemory(regions: [try region(0, 0x1000_0000, size: page)])
        let clash = try region(0, 0x3000_0000, size: page)
        #expect(throws: MemoryError.overlappingRegions(.guestPhysical, first: 0, second: 0)) {
            try memory.adding(clash)
        }
    }

    @Test func rejectsMoreRegionsThanTheLimit() throws {
        let regions = try (0..<3).map { try region(UInt64($0) * page, 0x1000_0000 + UInt64($0) * page, size: page) }
        #expect(throws: MemoryError.tooManyRegions(count: 3, limit: 2)) {
            try GuestMemory(regions: regions, maximumRegions: 2)
        }
        let two = try GuestMemory(regions: Array(regions.prefix(2)), maximumRegions: 2)
        #expect(throws: MemoryError.tooManyRegions(count: 3, limit: 2)) {
            try two.adding(regions[2])
        }
    }

    @Test func translatesOnlyRangesInsideOneRegion() throws {
        let memory = try GuestMemory(regions: [try region(0x1000, 0x1000_0000, size: page)])
        let start = try #require(memory.pointer(gpa(0x1000), length: Int(page)))
        #expect(memory.pointer(gpa(0x1000 + page - 1), length: 1) == start + Int(page) - 1)
        #expect(memory.pointer(gpa(0x1000 + page - 1), length: 2) == nil)   // straddles the end
        #expect(memory.pointer(gpa(0x1000 + page), length: 1) == nil)      // one past the end
        #expect(memory.pointer(gpa(0xfff), length: 1) == nil)              // just before
        #expect(memory.pointer(gpa(0x1000), length: 0) == nil)             // lengths must be positive
        #expect(memory.pointer(gpa(0x1000), length: -1) == nil)
        #expect(memory.pointer(gpa(UInt64.max), length: 2) == nil)          // wraps 2^64
    }

    @Test func translatesThroughBinarySearchAmongManyRegions() throws {
        let regions = try (0..<20).map { try region(UInt64($0) * 2 * page, 0x1000_0000 + UInt64($0) * 2 * page, size: page, fill: UInt8($0)) }
        let memory = try GuestMemory(regions: regions.shuffled())
        for index in 0..<20 {
            let start = UInt64(index) * 2 * page
            #expect(memory.pointer(gpa(start + 5), length: 1)?.load(as: UInt8.self) == UInt8(index))
            #expect(memory.pointer(gpa(start + page), length: 1) == nil)   // the gap after each region
            #expect(memory.pointer(FrontEndVirtualAddress(0x1000_0000 + start + 7), length: 1)?.load(as: UInt8.self) == UInt8(index))
        }
    }

    @Test func producesOneSegmentPerAdjacentRegion() throws {
        let first = try region(0, 0x1000_0000, size: page, fill: 1)
        let second = try region(page, 0x3000_0000, size: page, fill: 2)
        let memory = try GuestMemory(regions: [first, second])
        withUnsafeTemporaryAllocation(of: BufferSegment.self, capacity: 4) { buffer in
            let result = memory.segments(gpa(page - 16), length: 48, into: buffer)
            #expect(result == .translated(segmentCount: 2))
            #expect(buffer[0] == BufferSegment(pointer: first.hostStart + Int(page) - 16, length: 16))
            #expect(buffer[1] == BufferSegment(pointer: second.hostStart, length: 32))
            #expect(memory.segments(gpa(page - 16), length: 48, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<1])) == .needsMoreSegments)
            #expect(memory.segments(gpa(8), length: 0, into: buffer) == .translated(segmentCount: 0))
            // Past the second region: a gap.
            #expect(memory.segments(gpa(page - 16), length: Int(page) + 17, into: buffer) == .notMapped)
            #expect(memory.segments(gpa(UInt64.max - 4), length: 8, into: buffer) == .addressOverflow)
        }
    }

    @Test func doesNotSegmentAcrossAGap() throws {
        let memory = try GuestMemory(regions: [try region(0, 0x1000_0000, size: page), try region(2 * page, 0x2000_0000, size: page)])
        withUnsafeTemporaryAllocation(of: BufferSegment.self, capacity: 4) { buffer in
            #expect(memory.segments(gpa(page - 8), length: 16, into: buffer) == .notMapped)
            #expect(memory.segments(gpa(page + 8), length: 16, into: buffer) == .notMapped)
        }
    }

    @Test func removalMatchesStartsAndSize() throws {
        let first = try region(0, 0x1000_0000, size: page)
        let second = try region(page, 0x2000_0000, size: page)
        let memory = try GuestMemory(regions: [first, second])
        #expect(throws: MemoryError.noMatchingRegion(guestPhysicalStart: gpa(page), frontEndVirtualStart: FrontEndVirtualAddress(0x2000_0000), size: 2 * page)) {
            try memory.removing(guestPhysicalStart: gpa(page), frontEndVirtualStart: FrontEndVirtualAddress(0x2000_0000), size: 2 * page)
        }
        #expect(throws: MemoryError.noMatchingRegion(guestPhysicalStart: gpa(page), frontEndVirtualStart: FrontEndVirtualAddress(0x1000_0000), size: page)) {
            try memory.removing(guestPhysicalStart: gpa(page), frontEndVirtualStart: FrontEndVirtualAddress(0x1000_0000), size: page)
        }
        let smaller = try memory.removing(guestPhysicalStart: gpa(page), frontEndVirtualStart: FrontEndVirtualAddress(0x2000_0000), size: page)
        #expect(smaller.regions.count == 1)
        #expect(smaller.regions.first === first)
        #expect(smaller.pointer(gpa(page), length: 1) == nil)
        #expect(memory.pointer(gpa(page), length: 1) != nil)   // the old table is unchanged
        #expect(smaller.maximumRegions == memory.maximumRegions)
    }

    @Test func removalKeepsMemoryMappedWhileAnOldTableIsReferenced() throws {
        var removed: GuestMemoryRegion? = try region(page, 0x2000_0000, size: page, fill: 0xab)
        let old = try GuestMemory(regions: [try region(0, 0x1000_0000, size: page), removed!])
        let pointer = try #require(old.pointer(gpa(page + 100), length: 1))
        var current: GuestMemory? = try old.removing(guestPhysicalStart: gpa(page), frontEndVirtualStart: FrontEndVirtualAddress(0x2000_0000), size: page)
        weak let weakRegion = removed
        removed = nil
        current = nil
        // The table in force no longer has the region, but the old table still does: the bytes
        // are still mapped and readable.
        #expect(current == nil)
        #expect(weakRegion != nil)
        #expect(pointer.load(as: UInt8.self) == 0xab)
        #expect(old.pointer(gpa(page + 100), length: 1)?.load(as: UInt8.self) == 0xab)
    }

    @Test func regionIsUnmappedWhenTheLastTableLetsGo() throws {
        weak var weakRegion: GuestMemoryRegion?
        do {
            let memory = try GuestMemory(regions: [try region(0, 0x1000_0000, size: page)])
            weakRegion = memory.regions.first
            #expect(weakRegion != nil)
        }
        #expect(weakRegion == nil)
    }

    @Test func addingLeavesTheOriginalUntouched() throws {
        let memory = try GuestMemory(regions: [try region(0, 0x1000_0000, size: page)])
        let bigger = try memory.adding(try region(page, 0x1000_0000 + page, size: page))
        #expect(memory.regions.count == 1)
        #expect(bigger.regions.count == 2)
        #expect(bigger.pointer(FrontEndVirtualAddress(0x1000_0000 + page), length: Int(page)) != nil)
        // Adjacent in both spaces but separate mappings: a contiguous pointer is refused.
        #expect(bigger.pointer(gpa(page - 1), length: 2) == nil)
    }
}
