import Synchronization
import VhostSystem

/// Tags of completed commands on their way to the queue that issued them: a ring with one
/// consumer, the queue's thread. Its producers are completion callbacks: libnbd runs them under
/// the connection's lock, one at a time; librbd runs them on its own threads, several at once,
/// so an inbox made for it serialises pushes with a lock (`multipleProducers`). When another
/// thread may produce, each push also signals `wakeup`, which the queue waits on.
final class CompletionInbox: @unchecked Sendable {
    // SAFETY: slot i is written by the producer before `tail` passes it (release) and read by
    // the consumer after it saw that `tail` (acquire); the capacity exceeds the tags in flight.
    private let tags: UnsafeMutableBufferPointer<UInt64>
    private let mask: Int
    private let head = Atomic<Int>(0)
    private let tail = Atomic<Int>(0)
    let wakeup: EventFD
    private let producerLock: Locked<Void>?

    /// Room for `capacity` tags in flight at once.
    init(capacity: Int, multipleProducers: Bool = false) throws(SystemError) {
        producerLock = multipleProducers ? Locked(()) : nil
        var size = 1
        while size < capacity { size <<= 1 }
        tags = .allocate(capacity: size)
        tags.initialize(repeating: 0)
        mask = size - 1
        wakeup = try EventFD()
    }

    deinit { tags.deallocate() }

    func push(_ tag: UInt64, signal: Bool) {
        if let producerLock {
            producerLock.withLock { _ in append(tag) }
        } else {
            append(tag)
        }
        if signal { try? wakeup.signal() }
    }

    private func append(_ tag: UInt64) {
        let position = tail.load(ordering: .relaxed)
        tags[position & mask] = tag
        tail.store(position &+ 1, ordering: .releasing)
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
