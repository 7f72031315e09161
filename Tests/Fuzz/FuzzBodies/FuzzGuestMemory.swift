#if canImport(Glibc)
import Glibc
#endif
import VhostSystem
import VirtioCore

/// Guest RAM for the fuzz bodies, made once per process and refilled for every input: one memfd
/// mapped twice, as with a real guest. The device's view (`memory`) is a `GuestMemory` of regions
/// mapped by `GuestMemoryRegion.map`, exactly as the back end maps what the front end sends; the
/// guest's view (`guestBytes`) is the whole memfd in file order, through which a body writes rings
/// and buffers and reads back what the device did, without going through the code under test.
///
/// Guest-physical layout (file offsets in brackets, 136 KiB in all):
/// - region 0: 0x0 ..< 0x1_0000 [0x0 ..< 0x1_0000];
/// - regions 1 and 2: 0x1_0000 ..< 0x1_1000 and 0x1_1000 ..< 0x1_2000 [the same], each adjacent
///   to the one before but mapped on its own, so a buffer across 0x1_0000 or 0x1_1000 becomes
///   several host pieces; 4 KiB each, so a long buffer or indirect table can run through both
///   into the gap behind them;
/// - a gap up to region 3;
/// - region 3: 0xFFFF_FFFF_FFFE_0000 ..< 0xFFFF_FFFF_FFFF_0000 [0x1_2000 ..< 0x2_2000], near the
///   top of the address space, where `address + length` can wrap.
final class FuzzGuestMemory {
    /// The regions, sorted by guest-physical start.
    static let placements = [
        Placement(guestPhysicalStart: 0, size: 0x1_0000, fileOffset: 0),
        Placement(guestPhysicalStart: 0x1_0000, size: 0x1000, fileOffset: 0x1_0000),
        Placement(guestPhysicalStart: 0x1_1000, size: 0x1000, fileOffset: 0x1_1000),
        Placement(guestPhysicalStart: 0xFFFF_FFFF_FFFE_0000, size: 0x1_0000, fileOffset: 0x1_2000),
    ]

    /// Where the run of adjacent regions that starts at guest-physical 0 ends (regions 0 to 2).
    static let lowRunEnd: UInt64 = 0x1_2000

    /// Bytes of guest RAM (the memfd's size).
    static let byteCount = 0x2_2000

    /// The device's view: what `SplitQueue` and the request handlers translate through.
    let memory: GuestMemory
    /// The guest's view: the whole memfd, region after region in file order.
    let guestBytes: UnsafeMutableRawBufferPointer
    /// A copy of `guestBytes` (file order) taken by `takeSnapshot`, which a body may edit into
    /// what it expects memory to hold next.
    let snapshot: UnsafeMutableRawBufferPointer
    private let guestMapping: MemoryMapping

    /// Creates the memfd and both views. A failure here is the machine's, not the input's: it stops
    /// the fuzzer with the reason.
    init() {
        do {
            let file = try MemFD.create(name: "fuzz-guest-ram", size: UInt64(Self.byteCount))
            guestMapping = try MemoryMapping(descriptor: file, offset: 0, length: UInt64(Self.byteCount))
            var regions: [GuestMemoryRegion] = []
            for placement in Self.placements {
                regions.append(try GuestMemoryRegion.map(
                    descriptor: file, guestPhysicalStart: GuestPhysicalAddress(placement.guestPhysicalStart),
                    frontEndVirtualStart: FrontEndVirtualAddress(0x7f00_0000_0000 + UInt64(placement.fileOffset) * 2),
                    size: UInt64(placement.size), mmapOffset: UInt64(placement.fileOffset)))
            }
            memory = try GuestMemory(regions: regions)
        } catch {
            fatalError("cannot set up the fuzzed guest's memory: \(error)")
        }
        guestBytes = guestMapping.bytes
        snapshot = .allocate(byteCount: Self.byteCount, alignment: 16)
        snapshot.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        snapshot.deallocate()
    }

    /// Fills all of guest RAM with `pattern` repeated (zeroes when it is empty).
    func fill(repeating pattern: UnsafeRawBufferPointer) {
        guard let base = guestBytes.baseAddress else { return }
        guard let source = pattern.baseAddress, pattern.count > 0 else {
            memset(base, 0, guestBytes.count)
            return
        }
        let first = min(pattern.count, guestBytes.count)
        memcpy(base, source, first)
        // Double the filled prefix until the memory is full.
        var filled = first
        while filled < guestBytes.count {
            let piece = min(filled, guestBytes.count - filled)
            memcpy(base + filled, base, piece)
            filled += piece
        }
    }

    /// The file offset of `length` bytes at guest-physical `address`, or nil unless they lie inside
    /// one region. `length` may be 0 (an address inside a region, or at its end).
    func fileOffset(of address: UInt64, length: Int) -> Int? {
        guard length >= 0 else { return nil }
        for placement in Self.placements where address >= placement.guestPhysicalStart {
            let offset = address - placement.guestPhysicalStart
            guard offset <= UInt64(placement.size), UInt64(length) <= UInt64(placement.size) - offset else { continue }
            return placement.fileOffset + Int(offset)
        }
        return nil
    }

    /// The guest-physical address of `length` bytes (at least 1) at a host pointer of the device's
    /// view, or nil unless they lie inside one region's mapping.
    func guestPhysicalAddress(ofHost pointer: UnsafeRawPointer, length: Int) -> UInt64? {
        guard length > 0 else { return nil }
        let host = UInt(bitPattern: pointer)
        for region in memory.regions {
            let start = UInt(bitPattern: region.hostStart)
            guard host >= start, host - start < UInt(region.size), UInt(length) <= UInt(region.size) - (host - start) else {
                continue
            }
            return region.guestPhysicalStart.rawValue + UInt64(host - start)
        }
        return nil
    }
}
