/// Completed operations copied out of an engine: tags and results (bytes, or a negative errno),
/// in a buffer allocated once.
public final class IOCompletions {
    let tags: UnsafeMutableBufferPointer<UInt64>
    let results: UnsafeMutableBufferPointer<Int32>
    public private(set) var count = 0

    public init(capacity: Int) {
        tags = .allocate(capacity: max(capacity, 1))
        results = .allocate(capacity: max(capacity, 1))
    }

    deinit {
        tags.deallocate()
        results.deallocate()
    }

    public var capacity: Int { tags.count }

    /// The completion at `index` (< count).
    @inline(__always)
    public subscript(index: Int) -> (tag: UInt64, result: Int32) {
        (tags[index], results[index])
    }

    /// Appends one; false when full.
    @discardableResult
    public func append(tag: UInt64, result: Int32) -> Bool {
        guard count < tags.count else { return false }
        tags[count] = tag
        results[count] = result
        count += 1
        return true
    }

    func setCount(_ newCount: Int) { count = newCount }

    public func removeAll() { count = 0 }
}
