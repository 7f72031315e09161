/// The guest's RAM as this process sees it: an immutable, validated table of mapped regions.
///
/// Built once and replaced whole. `adding` and `removing` return a new table and leave this one
/// untouched, so a queue worker that still holds the old table (and any request translated
/// through it) keeps every region it references mapped. Regions are sorted and non-overlapping
/// in both the guest-physical and the front-end virtual address space.
///
/// Lookups are binary searches over flat arrays of plain values (O(log n)). There is no last-hit
/// cache here: with the handful of regions QEMU usually sends a search is two or three
/// comparisons, and a cache would be mutable state in a type shared between threads.
public final class GuestMemory: Sendable {
    /// What the back end advertises in GET_MAX_MEM_SLOTS: libvhost-user's VHOST_USER_MAX_RAM_SLOTS
    /// (509). QEMU itself never uses more than its own limit (ACPI_MAX_RAM_SLOTS, 256, on x86).
    public static let defaultMaximumRegions = 509

    /// The regions, sorted by guest-physical start.
    public let regions: [GuestMemoryRegion]
    /// The most regions this table, and the tables derived from it, may hold.
    public let maximumRegions: Int
    let physicalSpans: [AddressSpan]
    let virtualSpans: [AddressSpan]
    /// The regions' host ranges, sorted by host address (their `hostAddress` is `start`), and
    /// the index in `regions` of each: the reverse lookup dirty logging needs.
    let hostSpans: [AddressSpan]
    let hostSpanRegions: [Int]

    /// An empty table: every translation fails.
    public init(maximumRegions: Int = GuestMemory.defaultMaximumRegions) {
        regions = []
        self.maximumRegions = maximumRegions
        physicalSpans = []
        virtualSpans = []
        hostSpans = []
        hostSpanRegions = []
    }

    /// Builds a table from `regions` in any order.
    /// - Throws: `MemoryError.tooManyRegions` if there are more than `maximumRegions`;
    ///   `.overlappingRegions` if two regions overlap in either address space.
    public init(regions: [GuestMemoryRegion], maximumRegions: Int = GuestMemory.defaultMaximumRegions) throws(MemoryError) {
        guard regions.count <= maximumRegions else {
            throw .tooManyRegions(count: regions.count, limit: maximumRegions)
        }
        let byPhysical = regions.sorted { $0.guestPhysicalStart < $1.guestPhysicalStart }
        let byVirtual = regions.sorted { $0.frontEndVirtualStart < $1.frontEndVirtualStart }
        for (previous, next) in zip(byPhysical, byPhysical.dropFirst()) where previous.guestPhysicalEnd > next.guestPhysicalStart.rawValue {
            throw .overlappingRegions(.guestPhysical, first: previous.guestPhysicalStart.rawValue,
                                      second: next.guestPhysicalStart.rawValue)
        }
        for (previous, next) in zip(byVirtual, byVirtual.dropFirst()) where previous.frontEndVirtualEnd > next.frontEndVirtualStart.rawValue {
            throw .overlappingRegions(.frontEndVirtual, first: previous.frontEndVirtualStart.rawValue,
                                      second: next.frontEndVirtualStart.rawValue)
        }
        self.regions = byPhysical
        self.maximumRegions = maximumRegions
        physicalSpans = byPhysical.map {
            AddressSpan(start: $0.guestPhysicalStart.rawValue, end: $0.guestPhysicalEnd, hostAddress: UInt(bitPattern: $0.hostStart))
        }
        virtualSpans = byVirtual.map {
            AddressSpan(start: $0.frontEndVirtualStart.rawValue, end: $0.frontEndVirtualEnd, hostAddress: UInt(bitPattern: $0.hostStart))
        }
        // Each region is its own mapping, so host ranges never overlap.
        hostSpanRegions = byPhysical.indices.sorted { byPhysical[$0].hostStart < byPhysical[$1].hostStart }
        hostSpans = hostSpanRegions.map {
            let start = UInt64(UInt(bitPattern: byPhysical[$0].hostStart))
            return AddressSpan(start: start, end: start + byPhysical[$0].size, hostAddress: UInt(start))
        }
    }

    public var isEmpty: Bool { regions.isEmpty }

    /// A new table with `region` added (ADD_MEM_REG). This table is unchanged.
    /// - Throws: `MemoryError.tooManyRegions`, `.overlappingRegions`.
    public func adding(_ region: GuestMemoryRegion) throws(MemoryError) -> GuestMemory {
        try GuestMemory(regions: regions + [region], maximumRegions: maximumRegions)
    }

    /// A new table without the region that starts at both given addresses and has the given size
    /// (REM_MEM_REG matches all three). This table is unchanged, and the removed region stays
    /// mapped for as long as this table or a request translated through it is alive.
    /// - Throws: `MemoryError.noMatchingRegion`.
    public func removing(guestPhysicalStart: GuestPhysicalAddress, frontEndVirtualStart: FrontEndVirtualAddress,
                         size: UInt64) throws(MemoryError) -> GuestMemory {
        guard let index = regions.firstIndex(where: {
            $0.guestPhysicalStart == guestPhysicalStart && $0.frontEndVirtualStart == frontEndVirtualStart && $0.size == size
        }) else {
            throw .noMatchingRegion(guestPhysicalStart: guestPhysicalStart, frontEndVirtualStart: frontEndVirtualStart, size: size)
        }
        var remaining = regions
        remaining.remove(at: index)
        return try GuestMemory(regions: remaining, maximumRegions: maximumRegions)
    }

    /// The region containing `address`, if any.
    public func region(containing address: GuestPhysicalAddress) -> GuestMemoryRegion? {
        physicalSpans.spanIndex(containing: address.rawValue).map { regions[$0] }
    }
}
