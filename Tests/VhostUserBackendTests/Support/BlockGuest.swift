#if canImport(Glibc)
import Glibc
#endif
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// The guest side of a virtio-blk device: guest RAM in memfds, one driver-side split ring per
/// queue with its kick, call and error eventfds, and virtio-blk requests built the way Linux's
/// virtio_blk builds them (header, data, status byte; VIRTIO spec 5.2.6).
final class BlockGuest {
    /// virtio-blk request types and statuses, as VirtioSpec declares them.
    typealias RequestType = BlockRequestType
    static let statusOK = BlockRequestStatus.ok.rawValue
    static let statusIOError = BlockRequestStatus.ioError.rawValue
    static let statusUnsupported = BlockRequestStatus.unsupported.rawValue
    static let sectorSize = 512

    /// Two guest-physically adjacent 8 MiB regions, each its own memfd (as QEMU splits RAM
    /// around holes), so buffers can straddle a region boundary.
    static let twoAdjacentRegions = [
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: 8 << 20),
        GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(8 << 20), size: 8 << 20),
    ]

    let ram: GuestRAM
    let queueSize: Int
    let eventIndex: Bool
    private(set) var queues: [DriverSplitQueue]
    let kicks: [EventFD]
    let calls: [EventFD]
    let errors: [EventFD]
    /// Call notifications received per queue (eventfd counts drained while waiting).
    private(set) var callsReceived: [UInt64]
    /// Added to every buffer address put in a descriptor: a guest behind an IOMMU whose IOVA
    /// for guest-physical address `a` is `a + iovaOffset` (0: no IOMMU).
    var iovaOffset: UInt64 = 0

    init(regions: [GuestRAM.RegionSpec] = BlockGuest.twoAdjacentRegions, queueCount: Int = InProcessBackEnd.queueCount,
         queueSize: Int = InProcessBackEnd.queueSize, eventIndex: Bool = true) throws {
        let ram = try GuestRAM(regions: regions)
        self.ram = ram
        self.queueSize = queueSize
        self.eventIndex = eventIndex
        queues = try (0..<queueCount).map { _ in try DriverSplitQueue(ram: ram, queueSize: queueSize, eventIndex: eventIndex) }
        kicks = try (0..<queueCount).map { _ in try EventFD() }
        calls = try (0..<queueCount).map { _ in try EventFD() }
        errors = try (0..<queueCount).map { _ in try EventFD() }
        callsReceived = Array(repeating: 0, count: queueCount)
    }

    /// Fresh rings (zeroed, indices 0) for every queue, as a driver does after a device reset.
    func replaceRings() throws {
        queues = try queues.indices.map { _ in try DriverSplitQueue(ram: ram, queueSize: queueSize, eventIndex: eventIndex) }
    }

    /// The regions and fds for SET_MEM_TABLE / ADD_MEM_REG.
    var memoryRegions: [(region: MemoryRegionDescription, fd: Int32)] {
        get throws {
            try ram.regionDescriptions.map { description in
                (try MemoryRegionDescription(
                    guestPhysicalAddress: description.guestPhysicalStart.rawValue, size: description.size,
                    userAddress: description.frontEndVirtualStart.rawValue, mmapOffset: description.mmapOffset),
                 description.descriptor.rawValue)
            }
        }
    }

    // MARK: Requests

    /// A request made available to the device and not yet collected.
    struct Pending {
        let queue: Int
        let head: UInt16
        let status: GuestRAM.Allocation
        let readBack: (address: GuestPhysicalAddress, length: Int)?
    }

    /// What the device answered.
    struct Completion {
        let status: UInt8
        let usedLength: UInt32
        let data: [UInt8]
    }

    /// Builds a request on `queue`: a 16-byte header, `outData` (device-readable), `inLength`
    /// device-writable bytes (at `inAddress` if given, else freshly allocated) and the status
    /// byte; makes it available and kicks unless `kick` is false.
    @discardableResult
    func submit(queue: Int, type: UInt32, sector: UInt64, outData: [UInt8] = [], outAddress: GuestPhysicalAddress? = nil,
                inLength: Int = 0, inAddress: GuestPhysicalAddress? = nil, dataRAM: GuestRAM? = nil,
                kick: Bool = true) throws -> Pending {
        let dataRAM = dataRAM ?? ram
        let header = try ram.allocate(size: 16, alignment: 16)
        var headerBytes = littleEndian(type) + littleEndian(UInt32(0)) + littleEndian(sector)
        header.pointer.copyMemory(from: &headerBytes, byteCount: 16)
        var readable: [(address: GuestPhysicalAddress, length: UInt32)] = [(header.guestPhysicalAddress, 16)]
        if !outData.isEmpty {
            let address = try outAddress ?? dataRAM.allocate(size: outData.count, alignment: 512).guestPhysicalAddress
            try dataRAM.write(outData, at: address)
            readable.append((address, UInt32(outData.count)))
        }
        var writable: [(address: GuestPhysicalAddress, length: UInt32)] = []
        var readBack: (address: GuestPhysicalAddress, length: Int)?
        if inLength > 0 {
            let address = try inAddress ?? dataRAM.allocate(size: inLength, alignment: 512).guestPhysicalAddress
            try dataRAM.fill(0xA5, at: address, length: inLength)
            writable.append((address, UInt32(inLength)))
            readBack = (address, inLength)
        }
        let status = try ram.allocate(size: 1, alignment: 1)
        status.pointer.storeBytes(of: 0xEE, as: UInt8.self)
        writable.append((status.guestPhysicalAddress, 1))
        let head = try queues[queue].addChain(
            readable: readable.map { (GuestPhysicalAddress($0.address.rawValue + iovaOffset), $0.length) },
            writable: writable.map { (GuestPhysicalAddress($0.address.rawValue + iovaOffset), $0.length) })
        queues[queue].publish()
        if kick { try kicks[queue].signal() }
        return Pending(queue: queue, head: head, status: status, readBack: readBack.map { ($0.address, $0.length) })
    }

    /// Waits until `pending` (all on one queue) complete, in any order, within `milliseconds`.
    func complete(_ pending: [Pending], dataRAM: GuestRAM? = nil, milliseconds: Int = 10_000) throws -> [Completion] {
        guard let queue = pending.first?.queue else { return [] }
        var used: [UInt16: UInt32] = [:]
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while pending.contains(where: { used[$0.head] == nil }) {
            for element in queues[queue].takeUsed() {
                used[UInt16(truncatingIfNeeded: element.id)] = element.length
            }
            // As Linux's virtqueue_enable_cb: ask for a call at the next used element
            // (used_event with EVENT_IDX), then look again in case one came meanwhile.
            if queues[queue].enableInterrupts() { continue }
            if pending.allSatisfy({ used[$0.head] != nil }) { break }
            guard ContinuousClock.now < deadline else {
                throw GuestTimeout(queue: queue, waitingFor: pending.map(\.head), used: Array(used.keys))
            }
            if waitReadable(calls[queue].rawValue, milliseconds: 5), let count = try calls[queue].drain() {
                callsReceived[queue] += count
            }
        }
        let dataRAM = dataRAM ?? ram
        return try pending.map { request in
            let data = try request.readBack.map { try dataRAM.read($0.length, at: $0.address) } ?? []
            return Completion(status: request.status.pointer.load(as: UInt8.self),
                              usedLength: used[request.head] ?? 0, data: data)
        }
    }

    /// Submits one request and waits for it.
    func perform(queue: Int = 0, _ type: RequestType, sector: UInt64 = 0, outData: [UInt8] = [], inLength: Int = 0,
                 dataRAM: GuestRAM? = nil) throws -> Completion {
        let pending = try submit(queue: queue, type: type.rawValue, sector: sector, outData: outData,
                                 inLength: inLength, dataRAM: dataRAM)
        return try complete([pending], dataRAM: dataRAM)[0]
    }

    func write(queue: Int = 0, sector: UInt64, _ bytes: [UInt8], dataRAM: GuestRAM? = nil) throws -> UInt8 {
        try perform(queue: queue, .write, sector: sector, outData: bytes, dataRAM: dataRAM).status
    }

    func read(queue: Int = 0, sector: UInt64, count: Int, dataRAM: GuestRAM? = nil) throws -> (status: UInt8, data: [UInt8]) {
        let completion = try perform(queue: queue, .read, sector: sector, inLength: count, dataRAM: dataRAM)
        return (completion.status, completion.data)
    }

    /// DISCARD / WRITE_ZEROES segments: `le64 sector; le32 num_sectors; le32 flags`.
    static func segments(_ ranges: [(sector: UInt64, count: UInt32, unmap: Bool)]) -> [UInt8] {
        ranges.flatMap { littleEndian($0.sector) + littleEndian($0.count) + littleEndian(UInt32($0.unmap ? 1 : 0)) }
    }

    /// Call notifications received on `queue` so far, including any not yet drained.
    func callsSignalled(queue: Int) throws -> UInt64 {
        if let count = try calls[queue].drain() { callsReceived[queue] += count }
        return callsReceived[queue]
    }

    /// Whether the queue's error eventfd was signalled (and resets it).
    func errorSignalled(queue: Int, milliseconds: Int) -> Bool {
        guard waitReadable(errors[queue].rawValue, milliseconds: milliseconds) else { return false }
        return ((try? errors[queue].drain()) ?? nil) != nil
    }
}

struct GuestTimeout: Error, CustomStringConvertible {
    let queue: Int
    let waitingFor: [UInt16]
    let used: [UInt16]
    var description: String { "queue \(queue): heads \(waitingFor) not all used in time (used: \(used))" }
}

func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// poll(2) for readability.
func waitReadable(_ fd: Int32, milliseconds: Int) -> Bool {
    var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, Int32(milliseconds)) == 1
}
