/// The heads a queue has handed to the device and not yet seen completed: one bit per
/// descriptor-table entry, allocated when the queue starts.
///
/// A driver must not make a head available again before the device has used it. A device that
/// completes requests later would otherwise hold two requests with one head, report one of
/// them twice and lose the other; so a repeated head breaks the ring instead.
final class OutstandingHeads {
    private let words: UnsafeMutableBufferPointer<UInt64>
    private(set) var count = 0

    init(queueSize: Int) {
        words = .allocate(capacity: max(1, (queueSize + 63) / 64))
        words.initialize(repeating: 0)
    }

    deinit { words.deallocate() }

    /// Marks `head` outstanding; false if it already was. `head` is below the queue size.
    @inline(__always)
    func insert(_ head: UInt16) -> Bool {
        let (word, bit) = (Int(head) / 64, UInt64(1) << (UInt64(head) % 64))
        guard word < words.count, words[word] & bit == 0 else { return false }
        words[word] |= bit
        count += 1
        return true
    }

    /// Whether `head` is outstanding.
    @inline(__always)
    func contains(_ head: UInt16) -> Bool {
        let (word, bit) = (Int(head) / 64, UInt64(1) << (UInt64(head) % 64))
        return word < words.count && words[word] & bit != 0
    }

    /// Clears `head`; false if it was not outstanding.
    @inline(__always)
    func remove(_ head: UInt16) -> Bool {
        let (word, bit) = (Int(head) / 64, UInt64(1) << (UInt64(head) % 64))
        guard word < words.count, words[word] & bit != 0 else { return false }
        words[word] &= ~bit
        count -= 1
        return true
    }
}
