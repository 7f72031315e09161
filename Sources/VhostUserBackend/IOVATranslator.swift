import IOMMUModel
import VhostSystem
import VirtioCore

/// Descriptor addresses as IOVAs (VIRTIO_F_ACCESS_PLATFORM): IOVA → front-end virtual address
/// through a snapshot of the IOTLB and its I/O page-table mirror (page-table walk first, with a
/// per-queue last-hit cache), then → host pointer through `GuestMemory`.
///
/// Permissions are enforced per buffer: a device-writable buffer needs a writable mapping, a
/// device-readable one (and indirect tables) a readable one. A miss or a permission fault
/// answers `.deferred`, which stops the walk before any byte of the request is touched; the
/// reason is kept in `fault` for the worker to act on (send a MISS, or fail the request).
///
/// One per queue worker, used only on its thread; a reference type so that the walk, which
/// takes the translator by value, can record the fault and update the cache.
final class IOVATranslator: DescriptorAddressTranslator {
    typealias Address = IOVirtualAddress

    enum Fault: Equatable {
        case miss(iova: UInt64, access: IOMMUAccess)
        case permission(iova: UInt64, needed: IOMMUAccess)
    }

    private(set) var memory: GuestMemory
    private(set) var iotlb: IOPageTableMirror
    private var cache = IOPageTableMirrorCache()
    /// Why the last walk was deferred; reset by `startRequest`.
    private(set) var fault: Fault?
    private let scratch: UnsafeMutableBufferPointer<IOTLBSegment>
    /// The IOVA ranges of the buffers the last walk translated (not its indirect table), to pin
    /// while the request is in flight: touching ranges joined, and past the capacity the last
    /// range widened over the rest, so they may cover more than the request uses, never less.
    private let recordedRanges: UnsafeMutableBufferPointer<ClosedRange<UInt64>>
    private var recordedCount = 0

    /// The most front-end pieces one buffer may map to (IOTLB entries that do not continue
    /// each other); past it the buffer is refused as needing too many segments.
    static let scratchCapacity = 64

    init(iotlb: IOPageTableMirror, memory: GuestMemory) {
        self.iotlb = iotlb
        self.memory = memory
        scratch = .allocate(capacity: Self.scratchCapacity)
        recordedRanges = .allocate(capacity: InFlightPins.pinsPerRequest)
    }

    deinit {
        scratch.deallocate()
        recordedRanges.deallocate()
    }

    func replace(iotlb: IOPageTableMirror) { self.iotlb = iotlb }
    func replace(memory: GuestMemory) { self.memory = memory }

    /// Forgets the last walk's fault and buffer ranges: a new request is walked.
    func startRequest() {
        fault = nil
        recordedCount = 0
    }

    /// The IOVA ranges of the walked request's buffers (valid until the next `startRequest`).
    var requestRanges: UnsafeBufferPointer<ClosedRange<UInt64>> {
        UnsafeBufferPointer(rebasing: recordedRanges[0..<recordedCount])
    }

    private func record(_ range: ClosedRange<UInt64>) {
        if recordedCount > 0 {
            let last = recordedRanges[recordedCount - 1]
            let touches = (last.upperBound == .max || range.lowerBound <= last.upperBound + 1)
                && (range.upperBound == .max || last.lowerBound <= range.upperBound + 1)
            if touches || recordedCount == recordedRanges.count {
                recordedRanges[recordedCount - 1] = min(last.lowerBound, range.lowerBound)...max(last.upperBound, range.upperBound)
                return
            }
        }
        recordedRanges[recordedCount] = range
        recordedCount += 1
    }

    /// Where `length` bytes at `iova`, allowed for `access`, are in the front end's space.
    enum RingTranslation {
        /// Contiguous there.
        case mapped(FrontEndVirtualAddress)
        /// This IOVA (the first unmapped byte, or one whose mapping lacks `access`) needs an UPDATE.
        case missing(iova: UInt64)
        /// Mapped, but not contiguously in the front end's space: the pieces of the whole pages
        /// the range spans, in IOVA order, for a contiguous view (`MemoryMapping(aliasing:)`).
        case scattered([IOTLBSegment])
    }

    /// Translates a ring part. One piece in the common case; otherwise the whole pages it spans
    /// are translated (ring set-up only: this allocates), which also finds a later miss.
    func ringAddress(_ iova: UInt64, length: Int, access: IOMMUAccess) -> RingTranslation {
        switch cache.translate(iotlb, iova: iova, length: UInt64(length), access: access,
                               into: UnsafeMutableBufferPointer(rebasing: scratch[0..<1])) {
        case .translated(let count) where count == 1:
            return .mapped(FrontEndVirtualAddress(rawValue: scratch[0].userAddress))
        case .miss(let missing), .permissionFault(let missing, _):
            return .missing(iova: missing)
        case .translated, .needsMoreSegments:
            break
        }
        let page = UInt64(MemoryMapping.pageSize)
        let first = iova & ~(page - 1)
        let end = iova &+ UInt64(length)
        guard end > iova, end <= UInt64.max - page else { return .scattered([]) }
        let span = ((end + page - 1) & ~(page - 1)) - first
        let pages = UnsafeMutableBufferPointer<IOTLBSegment>.allocate(capacity: Int(span / page))
        defer { pages.deallocate() }
        switch cache.translate(iotlb, iova: first, length: span, access: access, into: pages) {
        case .translated(let count):
            return .scattered(Array(pages[0..<count]))
        case .miss(let missing), .permissionFault(let missing, _):
            return .missing(iova: missing)
        case .needsMoreSegments:
            return .scattered([])
        }
    }

    /// Front-end address of `length` contiguous bytes at `iova` allowed for `access`.
    func frontEndAddress(_ iova: UInt64, length: Int, access: IOMMUAccess) -> FrontEndVirtualAddress? {
        if case .mapped(let address) = ringAddress(iova, length: length, access: access) { return address }
        return nil
    }

    func pointer(_ address: IOVirtualAddress, length: Int) -> UnsafeMutableRawPointer? {
        guard length > 0, let user = frontEndAddress(address.rawValue, length: length, access: .read) else { return nil }
        return memory.pointer(user, length: length)
    }

    func segments(_ address: IOVirtualAddress, length: Int,
                  into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        segments(address, length: length, deviceWrites: false, into: buffer)
    }

    func segments(_ address: IOVirtualAddress, length: Int, deviceWrites: Bool,
                  into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        let translation = translate(address, length: length, deviceWrites: deviceWrites, into: buffer)
        if case .translated(let count) = translation, count > 0 {
            // length > 0 and the end does not overflow, or translate would have refused.
            record(address.rawValue...(address.rawValue + UInt64(length) - 1))
        }
        return translation
    }

    /// An indirect table is read during the walk only: not recorded for pinning.
    func tableSegments(_ address: IOVirtualAddress, length: Int,
                       into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        translate(address, length: length, deviceWrites: false, into: buffer)
    }

    private func translate(_ address: IOVirtualAddress, length: Int, deviceWrites: Bool,
                           into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        if length == 0 { return .translated(segmentCount: 0) }
        guard length > 0 else { return .notMapped }
        if address.rawValue.addingReportingOverflow(UInt64(length)).overflow { return .addressOverflow }
        let access: IOMMUAccess = deviceWrites ? .write : .read
        let pieces: Int
        switch cache.translate(iotlb, iova: address.rawValue, length: UInt64(length), access: access, into: scratch) {
        case .translated(let count):
            pieces = count
        case .miss(let iova):
            fault = .miss(iova: iova, access: access)
            return .deferred
        case .permissionFault(let iova, let needed):
            fault = .permission(iova: iova, needed: needed)
            return .deferred
        case .needsMoreSegments:
            return .needsMoreSegments
        }
        var produced = 0
        for index in 0..<pieces {
            let piece = scratch[index]
            guard let pieceLength = Int(exactly: piece.length) else { return .notMapped }
            let room = UnsafeMutableBufferPointer(rebasing: buffer[produced...])
            switch memory.segments(FrontEndVirtualAddress(rawValue: piece.userAddress), length: pieceLength, into: room) {
            case .translated(let count): produced += count
            // The IOTLB maps the IOVA to front-end addresses outside the memory table: the
            // front end's error, reported like a guest-physical address outside guest memory.
            case .notMapped: return .notMapped
            case .addressOverflow: return .addressOverflow
            case .needsMoreSegments: return .needsMoreSegments
            case .deferred: return .deferred
            }
        }
        return .translated(segmentCount: produced)
    }
}
