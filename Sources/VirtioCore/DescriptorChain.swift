/// One available buffer popped from a queue: its head index and its segments, readable ones
/// first, then writable ones, already translated to host memory and bounds-checked.
///
/// The segments live in the queue's preallocated segment buffer, so a chain is valid only until
/// the next `popAvailable` on the same queue: using it afterwards is a programming error and
/// traps. A device that keeps a request in flight across pops copies what it needs first (the
/// header into its own memory, the data as `iovec`s into its own preallocated array, the status
/// byte's address) and keeps `memory` alive until it completes the request.
///
/// Guest memory is shared: the guest can change the bytes behind a segment at any time. Copy a
/// header out before validating it; never keep a Swift reference into the buffers.
public struct DescriptorChain {
    /// The head index to return in the used ring (`pushUsed(head:writtenLength:)`).
    public let headIndex: UInt16
    /// Total bytes of the device-readable descriptors.
    public let readableByteCount: Int
    /// Total bytes of the device-writable descriptors.
    public let writableByteCount: Int
    /// The table the segments were translated through; holding it keeps them mapped.
    public let memory: GuestMemory

    let storage: SegmentStorage
    let generation: UInt64
    let readableSegmentCount: Int
    let writableSegmentCount: Int

    init(headIndex: UInt16, readableByteCount: Int, writableByteCount: Int, memory: GuestMemory,
         storage: SegmentStorage, readableSegmentCount: Int, writableSegmentCount: Int) {
        self.headIndex = headIndex
        self.readableByteCount = readableByteCount
        self.writableByteCount = writableByteCount
        self.memory = memory
        self.storage = storage
        generation = storage.generation
        self.readableSegmentCount = readableSegmentCount
        self.writableSegmentCount = writableSegmentCount
    }

    /// The device-readable segments, in chain order.
    public var readable: Segments {
        Segments(storage: storage, generation: generation, offset: 0, count: readableSegmentCount)
    }

    /// The device-writable segments, in chain order.
    public var writable: Segments {
        Segments(storage: storage, generation: generation, offset: readableSegmentCount, count: writableSegmentCount)
    }

    /// The segments of `side`.
    public func segments(_ side: Side) -> Segments {
        switch side {
        case .readable: return readable
        case .writable: return writable
        }
    }

    /// Total bytes of `side`.
    public func byteCount(_ side: Side) -> Int {
        switch side {
        case .readable: return readableByteCount
        case .writable: return writableByteCount
        }
    }
}
