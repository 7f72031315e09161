import Synchronization
import VhostSystem

/// Tags of completed commands on their way to the queue that issued them: a single-producer,
/// single-consumer ring. The producers are completion callbacks, which libnbd runs under the
/// connection's lock (so one at a time, whichever thread drove the socket); the consumer is the
/// queue's thread. When another thread may produce (a connection shared by queues), each push
/// also signals `wakeup`, which is in the queue's poller.
final class CompletionInbox: @unchecked Sendable {
    // SAFETY: slot i is written by the producer before `tail` passes it (release) and read by
    // the consumer after it saw that `tail` (acquire); the capacity exceeds the tags in flight.
    private let tags: UnsafeMutableBufferPointer<UInt64>
    private let mask: Int
    private let head = Atomic<Int>(0)
    private let tail = Atomic<Int>(0)
    let wakeup: EventFD

    /// Room for `capacity` tags in flight at once.
    init(capacity: Int) throws(SystemError) {
        var size = 1
        while size < capacity { size <<= 1 }
        tags = .allocate(capacity: size)
        tags.initialize(repeating: 0)
        mask = size - 1
        wakeup = try EventFD()
    }

    deinit { tags.deallocate() }

    func push(_ tag: UInt64, signal: Bool) {
        let position = tail.load(ordering: .relaxed)
        tags[position & mask] = tag
        tail.store(position &+ 1, ordering: .releasing)
        if signal { try? wakeup.signal() }
    }

    func pop() -> UInt64? {
        let position = head.load(ordering: .relaxed)
        guard position != tail.load(ordering: .acquiring) else { return nil }
        let tag = tags[position & mask]
        head.store(position &+ 1, ordering: .releasing)
        return tag
    }

    var isEmpty: Bool { head.load(ordering: .relaxed) == tail.load(ordering: .acquiring) }
}
