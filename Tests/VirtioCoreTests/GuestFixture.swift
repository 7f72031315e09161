import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore

/// A fake guest: RAM in memfds written through the driver's mapping, the device's own mapping of
/// the same memfds (through `GuestMemoryRegion.map`, as the back end does), and a driver queue
/// and a device queue on the same rings.
///
/// Default RAM layout (guest-physical):
/// - region 0: 0x0_0000 ..< 0x10_0000, front-end virtual 0x7f00_0000_0000 (rings and buffers)
/// - region 1: 0x10_0000 ..< 0x20_0000, adjacent to region 0 in guest-physical space but not in
///   front-end virtual space (0x7f80_0000_0000)
/// - a gap 0x20_0000 ..< 0x100_0000
/// - region 2: 0x100_0000 ..< 0x101_0000
final class GuestFixture {
    static let regionSize = 0x10_0000
    static let region1Start: UInt64 = 0x10_0000
    static let region1End: UInt64 = 0x20_0000
    static let gapStart: UInt64 = 0x20_0000
    static let region2Start: UInt64 = 0x100_0000
    static let region2Size = 0x1_0000

    static let defaultRegions = [
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: regionSize,
                            frontEndVirtualStart: FrontEndVirtualAddress(0x7f00_0000_0000)),
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(region1Start), size: regionSize,
                            frontEndVirtualStart: FrontEndVirtualAddress(0x7f80_0000_0000)),
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(region2Start), size: region2Size,
                            frontEndVirtualStart: FrontEndVirtualAddress(0x7fc0_0000_0000)),
    ]

    let ram: GuestRAM
    let memory: GuestMemory
    let driver: DriverSplitQueue
    var device: SplitQueue

    init(queueSize: Int = 8, features: SplitQueue.Features = [.indirectDescriptors], startIndex: UInt16 = 0,
         maximumSegments: Int? = nil, maximumChainLength: Int? = nil,
         regions: [GuestRAM.RegionSpec] = GuestFixture.defaultRegions) throws {
        ram = try GuestRAM(regions: regions)
        memory = try ram.deviceView()
        driver = try DriverSplitQueue(ram: ram, queueSize: queueSize, eventIndex: features.contains(.eventIndex))
        driver.startIndices(at: startIndex)
        let addresses = driver.frontEndVirtualAddresses
        let layout = try SplitQueue.Layout.translate(queueSize: queueSize, descriptorTable: addresses.descriptorTable,
                                                     availableRing: addresses.availableRing, usedRing: addresses.usedRing,
                                                     memory: memory)
        device = SplitQueue(layout: layout, features: features, nextAvailableIndex: startIndex, maximumSegments: maximumSegments,
                            maximumChainLength: maximumChainLength)
    }

    /// A fresh buffer of `size` bytes in region 0, filled with `fill`.
    func buffer(_ size: Int, fill: UInt8 = 0) throws -> GuestPhysicalAddress {
        let allocation = try ram.allocate(size: size, alignment: 16)
        allocation.pointer.initializeMemory(as: UInt8.self, repeating: fill, count: size)
        return allocation.guestPhysicalAddress
    }

    /// Pops through the device queue with the device's memory.
    func pop() throws(VirtqueueError) -> DescriptorChain? {
        try device.popAvailable(memory: memory)
    }

    /// The device's notification decisions (`#expect` cannot call mutating members directly).
    func needsNotification() -> Bool { device.needsNotification() }
    func enableNotifications() -> Bool { device.enableNotifications() }

    /// Writes raw descriptors at indices 0, 1, ... and makes `head` available.
    func offerRaw(_ descriptors: [SplitDescriptor], head: UInt16 = 0) throws {
        for (index, descriptor) in descriptors.enumerated() {
            try driver.writeDescriptor(descriptor, at: index)
        }
        driver.makeAvailable(head: head)
        driver.publish()
    }

    /// The guest-physical address a device-side host pointer corresponds to (via the device's
    /// own mapping), or nil if it is outside every region.
    func guestPhysicalAddress(of pointer: UnsafeMutableRawPointer, length: Int) -> UInt64? {
        for region in memory.regions {
            let start = UInt(bitPattern: region.hostStart)
            let address = UInt(bitPattern: pointer)
            if address >= start, address - start < UInt(region.size), UInt(length) <= UInt(region.size) - (address - start) {
                return region.guestPhysicalStart.rawValue + UInt64(address - start)
            }
        }
        return nil
    }

    /// The segments of one side as (guest-physical address, length) pairs.
    func ranges(_ segments: DescriptorChain.Segments) -> [Range] {
        segments.map { Range(address: guestPhysicalAddress(of: $0.pointer, length: $0.length) ?? .max, length: UInt64($0.length)) }
    }

    struct Range: Equatable, CustomStringConvertible {
        let address: UInt64
        let length: UInt64
        var description: String { "0x\(String(address, radix: 16))+\(length)" }
    }
}

/// Shorthand for descriptors in tests.
func descriptor(_ address: UInt64, _ length: UInt32, _ flags: SplitDescriptor.Flags = [], next: UInt16 = 0) -> SplitDescriptor {
    SplitDescriptor(address: address, length: length, flags: flags, next: next)
}

func gpa(_ value: UInt64) -> GuestPhysicalAddress { GuestPhysicalAddress(value) }
