import IOMMUModel

/// The IOVA ranges a queue's requests in flight use, pinned in the IOMMU model's `PinTracker`,
/// and the INVALIDATEs waiting for those pins (ACCESS_PLATFORM only).
///
/// A request completed later keeps using its buffers (an io_uring read writes into them) after
/// the worker went on to other requests and commands. An INVALIDATE must not be acknowledged
/// while such a request still uses a range it removes: the guest would reuse the IOVA for
/// other memory while the device still writes at the old translation. So a request going in
/// flight pins its buffers' ranges; an INVALIDATE switches the worker to the IOTLB without the
/// range at once (new requests miss on it) and is acknowledged when the last pin on the range
/// is released. Requests that do not touch the range neither wait nor hold it up.
///
/// The tokens live in slots made when the ring starts, `pinsPerRequest` per head, so pinning
/// and releasing allocate nothing here (the tracker's own store may, docs/iommu.md).
struct InFlightPins: ~Copyable {
    /// The most ranges one request pins; a request with more buffers pins the last range
    /// widened over the rest (``IOVATranslator/requestRanges``).
    static let pinsPerRequest = 4

    /// Where a token waits for its release: a class, so that a non-copyable token can sit in
    /// an array. (Unsafe pointers to non-copyable tokens compile wrongly under ThreadSanitizer
    /// with Swift 6.3.1: "Invalid bitcast".)
    private final class TokenSlot {
        var token: PinToken?
    }

    private var tracker = PinTracker()
    private let queueSize: Int
    /// `pinsPerRequest` slots per head; those below `counts[head]` hold tokens.
    private let slots: [TokenSlot]
    private var counts: [UInt8]
    /// The INVALIDATEs not acknowledged yet, with the answer each waits for.
    private var waiting: [(id: InvalidationID, completion: CommandCompletion)] = []

    init(queueSize: Int) {
        self.queueSize = max(queueSize, 0)
        slots = (0..<(self.queueSize * Self.pinsPerRequest)).map { _ in TokenSlot() }
        counts = Array(repeating: 0, count: self.queueSize)
    }

    /// The pins held, over every head.
    var pinCount: Int { tracker.pinCount }
    /// INVALIDATEs waiting for pins to be released.
    var waitingInvalidations: Int { waiting.count }

    /// Pins `ranges` for the request of `head` (which holds none). False, with nothing pinned,
    /// when a range overlaps an INVALIDATE still waiting: its translation is already gone.
    mutating func pin(head: UInt16, ranges: UnsafeBufferPointer<ClosedRange<UInt64>>) -> Bool {
        let slot = Int(head)
        guard slot < queueSize, counts[slot] == 0, ranges.count <= Self.pinsPerRequest else { return false }
        let base = slot * Self.pinsPerRequest
        for range in ranges {
            do {
                slots[base + Int(counts[slot])].token = try tracker.pin(range)
                counts[slot] += 1
            } catch {
                release(head: head)
                return false
            }
        }
        return true
    }

    /// Releases the pins of `head`'s request (none held: nothing happens) and acknowledges the
    /// INVALIDATEs no pin holds up any more.
    mutating func release(head: UInt16) {
        let slot = Int(head)
        guard slot < queueSize, counts[slot] > 0 else { return }
        let base = slot * Self.pinsPerRequest
        while counts[slot] > 0 {
            counts[slot] -= 1
            // Every token here came from `tracker`: release cannot refuse it.
            if let token = slots[base + Int(counts[slot])].token.take() { try? tracker.release(token) }
        }
        guard !waiting.isEmpty else { return }
        for id in tracker.completedInvalidations() {
            if let index = waiting.firstIndex(where: { $0.id == id }) {
                waiting.remove(at: index).completion.complete()
            }
        }
    }

    /// An INVALIDATE of `range`: acknowledged at once when no pin covers it, otherwise when the
    /// last request using it completes. New pins on the range are refused meanwhile.
    mutating func invalidate(_ range: ClosedRange<UInt64>, acknowledging completion: CommandCompletion) {
        switch tracker.invalidate(range) {
        case .completed:
            completion.complete()
        case .deferred(let id):
            waiting.append((id, completion))
        }
    }
}
