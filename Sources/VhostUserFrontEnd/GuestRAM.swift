import VhostSystem
import VirtioCore

/// Guest RAM played by the test front end: one or more memfds mapped into this process, each
/// placed at a guest-physical address and at a pretend front-end virtual address, as QEMU's
/// `memory-backend-memfd,share=on` would be.
///
/// Hand `regionDescriptions` to the back end (SET_MEM_TABLE / ADD_MEM_REG): it maps the same
/// memfds itself, so the driver writes rings through this mapping and the device reads them
/// through its own, as with a real guest. A bump allocator hands out ring and buffer space.
///
/// Not thread-safe: one test or benchmark thread drives it.
public final class GuestRAM {
    /// Where QEMU-like front-end virtual addresses start by default (a typical x86-64 mmap area).
    public static let defaultFrontEndVirtualBase: UInt64 = 0x7f00_0000_0000

    /// The regions, sorted by guest-physical start.
    public let regions: [Region]

    /// Creates and maps one memfd per region.
    /// - Throws: `GuestDriverError.invalidLayout` for empty or overlapping regions, `.system`.
    public init(regions specs: [RegionSpec]) throws(GuestDriverError) {
        guard !specs.isEmpty else { throw .invalidLayout("no regions") }
        var made: [Region] = []
        for (number, spec) in specs.enumerated() {
            guard spec.size > 0 else { throw .invalidLayout("region \(number) is empty") }
            let virtualStart = spec.frontEndVirtualStart
                ?? FrontEndVirtualAddress(Self.defaultFrontEndVirtualBase &+ spec.guestPhysicalStart.rawValue)
            let fileSize = spec.mmapOffset &+ UInt64(spec.size)
            guard fileSize > spec.mmapOffset, Int(exactly: fileSize) != nil else {
                throw .invalidLayout("region \(number) is too large")
            }
            do throws(SystemError) {
                let fd = try MemFD.create(name: "guest-ram-\(number)", size: fileSize)
                let mapping = try MemoryMapping(descriptor: fd, offset: 0, length: fileSize)
                made.append(Region(descriptor: fd, guestPhysicalStart: spec.guestPhysicalStart,
                                   frontEndVirtualStart: virtualStart, size: spec.size,
                                   mmapOffset: spec.mmapOffset, mapping: mapping))
            } catch {
                throw .system(error)
            }
        }
        made.sort { $0.guestPhysicalStart < $1.guestPhysicalStart }
        for (previous, next) in zip(made, made.dropFirst())
        where previous.guestPhysicalStart.rawValue &+ UInt64(previous.size) > next.guestPhysicalStart.rawValue {
            throw .invalidLayout("regions at \(previous.guestPhysicalStart) and \(next.guestPhysicalStart) overlap")
        }
        self.regions = made
    }

    /// One region of `size` bytes at guest-physical `guestPhysicalStart`, visible to the front end
    /// at `frontEndVirtualBase + guestPhysicalStart`.
    public convenience init(size: Int, guestPhysicalStart: GuestPhysicalAddress = GuestPhysicalAddress(0),
                            frontEndVirtualBase: UInt64 = GuestRAM.defaultFrontEndVirtualBase) throws(GuestDriverError) {
        let virtualStart = FrontEndVirtualAddress(frontEndVirtualBase &+ guestPhysicalStart.rawValue)
        try self.init(regions: [RegionSpec(guestPhysicalStart: guestPhysicalStart, size: size, frontEndVirtualStart: virtualStart)])
    }

    /// The regions as the back end must be told about them.
    public var regionDescriptions: [RegionDescription] {
        regions.map {
            RegionDescription(descriptor: $0.descriptor, guestPhysicalStart: $0.guestPhysicalStart, size: UInt64($0.size),
                              frontEndVirtualStart: $0.frontEndVirtualStart, mmapOffset: $0.mmapOffset)
        }
    }

    /// Hands out `size` bytes aligned to `alignment` (a power of two) in guest-physical space,
    /// from the first region with room. The bytes are zero unless written before.
    /// - Throws: `GuestDriverError.outOfSpace`.
    public func allocate(size: Int, alignment: Int = 16) throws(GuestDriverError) -> Allocation {
        guard size > 0, alignment > 0, alignment & (alignment - 1) == 0 else { throw .outOfSpace(requested: size) }
        let mask = UInt64(alignment - 1)
        for region in regions {
            let cursor = region.guestPhysicalStart.rawValue + UInt64(region.allocated)
            let aligned = (cursor + mask) & ~mask
            let offset = Int(aligned - region.guestPhysicalStart.rawValue)
            guard offset <= region.size, size <= region.size - offset else { continue }
            region.allocated = offset + size
            return Allocation(guestPhysicalAddress: GuestPhysicalAddress(aligned),
                              frontEndVirtualAddress: FrontEndVirtualAddress(region.frontEndVirtualStart.rawValue + UInt64(offset)),
                              pointer: region.hostStart + offset, size: size)
        }
        throw .outOfSpace(requested: size)
    }

    /// The driver's view of `length` bytes at `address`, if they lie inside one region.
    public func pointer(_ address: GuestPhysicalAddress, length: Int) -> UnsafeMutableRawPointer? {
        guard let region = regions.first(where: { $0.contains(address, length: length) }) else { return nil }
        return region.hostStart + Int(address.rawValue - region.guestPhysicalStart.rawValue)
    }

    /// The front-end virtual address of a guest-physical address inside a region.
    public func frontEndVirtualAddress(of address: GuestPhysicalAddress) -> FrontEndVirtualAddress? {
        guard let region = regions.first(where: { $0.contains(address, length: 1) }) else { return nil }
        return FrontEndVirtualAddress(region.frontEndVirtualStart.rawValue + (address.rawValue - region.guestPhysicalStart.rawValue))
    }

    /// Writes `bytes` at `address`; the range may continue into guest-physically adjacent regions.
    /// - Throws: `GuestDriverError.addressNotMapped`.
    public func write(_ bytes: [UInt8], at address: GuestPhysicalAddress) throws(GuestDriverError) {
        var done = 0
        try forEachPiece(address, length: bytes.count) { pointer, count in
            // SAFETY: the piece lies inside a region's mapping; done + count <= bytes.count.
            UnsafeMutableRawBufferPointer(start: pointer, count: count).copyBytes(from: bytes[done..<(done + count)])
            done += count
        }
    }

    /// Reads `count` bytes at `address`; the range may continue into adjacent regions.
    /// - Throws: `GuestDriverError.addressNotMapped`.
    public func read(_ count: Int, at address: GuestPhysicalAddress) throws(GuestDriverError) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(max(count, 0))
        try forEachPiece(address, length: count) { pointer, pieceCount in
            result.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: pieceCount))
        }
        return result
    }

    /// Sets `length` bytes at `address` to `value`; the range may continue into adjacent regions.
    /// - Throws: `GuestDriverError.addressNotMapped`.
    public func fill(_ value: UInt8, at address: GuestPhysicalAddress, length: Int) throws(GuestDriverError) {
        try forEachPiece(address, length: length) { pointer, count in
            // SAFETY: the piece lies inside a region's mapping; UInt8 is trivial.
            pointer.initializeMemory(as: UInt8.self, repeating: value, count: count)
        }
    }

    /// Calls `body` for each piece of `length` bytes at `address`, region by region. Checks the
    /// whole range before touching anything.
    private func forEachPiece(_ address: GuestPhysicalAddress, length: Int,
                              _ body: (UnsafeMutableRawPointer, Int) -> Void) throws(GuestDriverError) {
        guard length >= 0 else { throw .addressNotMapped(address, length: length) }
        var pieces: [(UnsafeMutableRawPointer, Int)] = []
        var cursor = address
        var remaining = length
        while remaining > 0 {
            guard let region = regions.first(where: { $0.contains(cursor, length: 1) }) else {
                throw .addressNotMapped(address, length: length)
            }
            let offset = Int(cursor.rawValue - region.guestPhysicalStart.rawValue)
            let piece = min(remaining, region.size - offset)
            pieces.append((region.hostStart + offset, piece))
            remaining -= piece
            cursor = GuestPhysicalAddress(cursor.rawValue &+ UInt64(piece))
        }
        for (pointer, count) in pieces { body(pointer, count) }
    }

    /// Maps every region a second time through `GuestMemoryRegion.map`, exactly as the back end
    /// does with the fds it receives: the device's view of this RAM.
    /// - Throws: `GuestDriverError.memory`.
    public func deviceView(maximumRegions: Int = GuestMemory.defaultMaximumRegions) throws(GuestDriverError) -> GuestMemory {
        var mapped: [GuestMemoryRegion] = []
        do throws(MemoryError) {
            for description in regionDescriptions {
                mapped.append(try GuestMemoryRegion.map(descriptor: description.descriptor,
                                                        guestPhysicalStart: description.guestPhysicalStart,
                                                        frontEndVirtualStart: description.frontEndVirtualStart,
                                                        size: description.size, mmapOffset: description.mmapOffset))
            }
            return try GuestMemory(regions: mapped, maximumRegions: maximumRegions)
        } catch {
            throw .memory(error)
        }
    }
}
