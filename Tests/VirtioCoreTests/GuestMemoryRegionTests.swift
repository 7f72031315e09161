#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostSystem
import VirtioCore

@Suite struct GuestMemoryRegionTests {
    let page = UInt64(MemoryMapping.pageSize)

    private func memfd(size: UInt64, pattern: Bool = false) throws -> OwnedFileDescriptor {
        let fd = try MemFD.create(name: "region-test", size: size)
        if pattern {
            let view = try MemoryMapping(descriptor: fd, offset: 0, length: size)
            for index in 0..<Int(size) { view.bytes[index] = UInt8(truncatingIfNeeded: index / 16) }
        }
        return fd
    }

    @Test func mapsRegionAndTranslatesBothAddressSpaces() throws {
        let fd = try memfd(size: 4 * page, pattern: true)
        let region = try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0x1000_0000),
                                               frontEndVirtualStart: FrontEndVirtualAddress(0x7f00_0000_0000),
                                               size: 4 * page, mmapOffset: 0)
        #expect(region.guestPhysicalEnd == 0x1000_0000 + 4 * page)
        let memory = try GuestMemory(regions: [region])
        let byPhysical = try #require(memory.pointer(gpa(0x1000_0000 + 0x40), length: 16))
        let byVirtual = try #require(memory.pointer(FrontEndVirtualAddress(0x7f00_0000_0000 + 0x40), length: 16))
        #expect(byPhysical == byVirtual)
        #expect(byPhysical.load(as: UInt8.self) == 4)
    }

    @Test func rejectsEmptyRegion() throws {
        let fd = try memfd(size: page)
        #expect(throws: MemoryError.emptyRegion) {
            try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0), frontEndVirtualStart: FrontEndVirtualAddress(0),
                                      size: 0, mmapOffset: 0)
        }
    }

    @Test func rejectsGuestPhysicalOverflow() throws {
        let fd = try memfd(size: page)
        #expect(throws: MemoryError.regionOverflow(.guestPhysical, start: UInt64.max - 0x10, size: page)) {
            try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(UInt64.max - 0x10),
                                      frontEndVirtualStart: FrontEndVirtualAddress(0), size: page, mmapOffset: 0)
        }
    }

    @Test func rejectsFrontEndVirtualOverflow() throws {
        let fd = try memfd(size: page)
        #expect(throws: MemoryError.regionOverflow(.frontEndVirtual, start: UInt64.max - page + 1, size: page)) {
            try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0),
                                      frontEndVirtualStart: FrontEndVirtualAddress(UInt64.max - page + 1), size: page, mmapOffset: 0)
        }
    }

    @Test func rejectsFileOffsetOverflow() throws {
        let fd = try memfd(size: page)
        #expect(throws: MemoryError.regionOverflow(.fileOffset, start: UInt64.max, size: page)) {
            try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0), frontEndVirtualStart: FrontEndVirtualAddress(0),
                                      size: page, mmapOffset: UInt64.max)
        }
    }

    @Test func rejectsMmapOffsetPastEndOfFile() throws {
        let fd = try memfd(size: 2 * page)
        #expect(throws: MemoryError.mmapOffsetPastEndOfFile(mmapOffset: page, size: 2 * page, fileSize: 2 * page)) {
            try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0), frontEndVirtualStart: FrontEndVirtualAddress(0),
                                      size: 2 * page, mmapOffset: page)
        }
        // A huge offset is rejected by the size check, before any mapping is attempted.
        #expect(throws: MemoryError.mmapOffsetPastEndOfFile(mmapOffset: 1 << 40, size: page, fileSize: 2 * page)) {
            try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0), frontEndVirtualStart: FrontEndVirtualAddress(0),
                                      size: page, mmapOffset: 1 << 40)
        }
    }

    @Test func acceptsRegionEndingExactlyAtEndOfFile() throws {
        let fd = try memfd(size: 3 * page)
        let region = try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0), frontEndVirtualStart: FrontEndVirtualAddress(0),
                                               size: page, mmapOffset: 2 * page)
        #expect(region.mapping.length == Int(page))
    }

    @Test func mapsFromPageRoundedOffsetAndAddsTheRemainder() throws {
        let fd = try memfd(size: 4 * page, pattern: true)
        // Offset 1 page + 0x30: the mapping starts at 1 page, the region 0x30 bytes into it.
        let offset = page + 0x30
        let region = try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: gpa(0x4000), frontEndVirtualStart: FrontEndVirtualAddress(0),
                                               size: 2 * page, mmapOffset: offset)
        #expect(region.offsetInMapping == 0x30)
        #expect(region.mapping.length == Int(2 * page) + 0x30)
        let memory = try GuestMemory(regions: [region])
        let first = try #require(memory.pointer(gpa(0x4000), length: 1))
        // The pattern byte at file offset `offset` is (offset / 16).
        #expect(first.load(as: UInt8.self) == UInt8(truncatingIfNeeded: offset / 16))
        #expect(memory.pointer(gpa(0x4000 + 2 * page - 1), length: 1) != nil)
        #expect(memory.pointer(gpa(0x4000 + 2 * page), length: 1) == nil)
    }

    @Test func reportsMappingFailureForDescriptorsThatCannotBeMapped() throws {
        // An eventfd is not a regular file (no size check) and cannot be mapped.
        let eventfd = try EventFD()
        #expect(throws: MemoryError.mappingFailed(SystemError(call: "mmap", errno: 19 /* ENODEV */))) {
            try GuestMemoryRegion.map(descriptor: eventfd.descriptor, guestPhysicalStart: gpa(0),
                                      frontEndVirtualStart: FrontEndVirtualAddress(0), size: page, mmapOffset: 0)
        }
    }

    /// In a child process, so other tests running in parallel do not disturb the counts.
    @Test func errorPathsAndDroppedTablesLeakNoDescriptorsOrMappings() async {
        await #expect(processExitsWith: .success) {
            func mappingCount() -> Int {
                guard let file = fopen("/proc/self/maps", "r") else { return -1 }
                defer { fclose(file) }
                var lines = 0
                while true {
                    let character = fgetc(file)
                    if character == EOF { break }
                    if character == 10 { lines += 1 }
                }
                return lines
            }
            let page = UInt64(MemoryMapping.pageSize)
            func churn() throws {
                let fd = try MemFD.create(name: "leak-test", size: 4 * page)
                _ = try? GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: GuestPhysicalAddress(0),
                                               frontEndVirtualStart: FrontEndVirtualAddress(0), size: 4 * page, mmapOffset: page)
                _ = try? GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: GuestPhysicalAddress(UInt64.max),
                                               frontEndVirtualStart: FrontEndVirtualAddress(0), size: page, mmapOffset: 0)
                let first = try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: GuestPhysicalAddress(0),
                                                      frontEndVirtualStart: FrontEndVirtualAddress(0), size: 2 * page, mmapOffset: 0)
                let second = try GuestMemoryRegion.map(descriptor: fd, guestPhysicalStart: GuestPhysicalAddress(page),
                                                       frontEndVirtualStart: FrontEndVirtualAddress(8 * page), size: page, mmapOffset: page)
                _ = try? GuestMemory(regions: [first, second])   // overlap
                let memory = try GuestMemory(regions: [first])
                _ = try memory.removing(guestPhysicalStart: GuestPhysicalAddress(0), frontEndVirtualStart: FrontEndVirtualAddress(0), size: 2 * page)
            }
            try churn()   // warm up lazily created runtime state
            let descriptors = OwnedFileDescriptor.openDescriptorCount()
            let mappings = mappingCount()
            // Each round maps 4 regions and opens a memfd: a leak would add at least 100 of each
            // over 100 rounds. The margin absorbs unrelated runtime activity in the process
            // (malloc arenas, the test harness's own descriptors).
            for _ in 0..<100 { try churn() }
            if OwnedFileDescriptor.openDescriptorCount() - descriptors >= 50 || mappingCount() - mappings >= 50 { exit(1) }
        }
    }

    @Test func regionStaysMappedAfterDescriptorIsClosed() throws {
        var fd: OwnedFileDescriptor? = try memfd(size: page, pattern: true)
        let region = try GuestMemoryRegion.map(descriptor: fd!, guestPhysicalStart: gpa(0), frontEndVirtualStart: FrontEndVirtualAddress(0),
                                               size: page, mmapOffset: 0)
        fd = nil
        #expect(region.hostStart.load(fromByteOffset: 0x20, as: UInt8.self) == 2)
    }
}
