/// The SET_MEM_TABLE payload: `u32 nregions; u32 padding; region[nregions]`, i.e.
/// 8 + 32·n bytes, with one file descriptor per region in the same order.
///
/// The C struct declares room for 8 regions, but QEMU (and DPDK's virtio-user, and rust-vmm's
/// front end) send only the `nregions` regions in use, and rust-vmm's back end rejects any other
/// length. So this library accepts exactly 8 + 32·nregions bytes and sends the same; the
/// "full 264 bytes with a smaller nregions" form is rejected as a wrong size.
///
/// A value of this type has 1...8 regions, each valid, and no two regions overlap in guest
/// physical or in front-end virtual address space.
public struct MemoryTableDescription: Equatable, Hashable, Sendable {
    /// The regions, in wire order (the order of the file descriptors).
    public let regions: [MemoryRegionDescription]

    /// The most regions the payload format holds (`VHOST_MEMORY_BASELINE_NREGIONS`).
    public static let maximumRegionCount = 8
    /// Length of the `nregions` + padding prefix.
    public static let headerByteCount = 8

    /// The payload length for `regionCount` regions: 8 + 32·regionCount.
    public static func byteCount(regionCount: Int) -> Int {
        headerByteCount + MemoryRegionDescription.byteCount * regionCount
    }

    /// Creates a validated table.
    ///
    /// - Throws: `.noMemoryRegions`, `.tooManyRegions`, `.memoryRegionOverlap`.
    public init(regions: [MemoryRegionDescription]) throws(ProtocolError) {
        guard !regions.isEmpty else {
            throw .noMemoryRegions
        }
        guard regions.count <= Self.maximumRegionCount else {
            throw .tooManyRegions(
                count: UInt32(clamping: regions.count), limit: UInt32(Self.maximumRegionCount))
        }
        // At most 8 regions: compare every pair. End addresses cannot overflow (checked by
        // MemoryRegionDescription), so half-open ranges [start, end) compare safely.
        for first in regions.indices {
            for second in regions.indices where second > first {
                let a = regions[first]
                let b = regions[second]
                if a.guestPhysicalAddress < b.guestPhysicalEnd && b.guestPhysicalAddress < a.guestPhysicalEnd {
                    throw .memoryRegionOverlap(.guestPhysical)
                }
                if a.userAddress < b.userEnd && b.userAddress < a.userEnd {
                    throw .memoryRegionOverlap(.frontEndVirtual)
                }
            }
        }
        self.regions = regions
    }

    /// Parses the payload.
    ///
    /// Checks, in order: the 8-byte prefix is present; `nregions` is 1...8; the length is
    /// exactly 8 + 32·nregions; each region; no overlaps. The padding word is ignored.
    ///
    /// - Throws: `.payloadLengthMismatch`, `.noMemoryRegions`, `.tooManyRegions`,
    ///   `.memoryRegionEmpty`, `.addressOverflow`, `.memoryRegionOverlap`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        var reader = try ByteReader(bytes, atLeast: Self.headerByteCount, payload: "memory table")
        let count = try reader.readUInt32()
        try reader.skip(4)  // padding
        guard count > 0 else {
            throw .noMemoryRegions
        }
        guard let regionCount = Int(exactly: count), regionCount <= Self.maximumRegionCount else {
            throw .tooManyRegions(count: count, limit: UInt32(Self.maximumRegionCount))
        }
        let expected = Self.byteCount(regionCount: regionCount)
        guard bytes.count == expected else {
            throw .payloadLengthMismatch(payload: "memory table", expected: expected, actual: bytes.count)
        }
        var regions: [MemoryRegionDescription] = []
        regions.reserveCapacity(regionCount)
        for _ in 0..<regionCount {
            regions.append(try MemoryRegionDescription(from: &reader))
        }
        try self.init(regions: regions)
    }

    /// The encoded length, 8 + 32·regions.count.
    public var byteCount: Int { Self.byteCount(regionCount: regions.count) }

    func write(to writer: inout ByteWriter) {
        writer.append(UInt32(truncatingIfNeeded: regions.count))
        writer.append(UInt32(0))  // padding
        for region in regions {
            region.write(to: &writer)
        }
    }
}
