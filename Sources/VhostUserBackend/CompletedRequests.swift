/// The completions a handler reports in one `reapCompletions`, in a buffer allocated when the
/// ring starts (room for every request the ring can have outstanding), taken by the worker
/// right after.
public final class CompletedRequests {
    private let tokens: UnsafeMutableBufferPointer<RequestToken>
    private let writtenLengths: UnsafeMutableBufferPointer<UInt32>
    public private(set) var count = 0
    /// Completions dropped because the buffer was full: a handler reporting more than it had.
    private(set) var overflowed = 0

    public init(capacity: Int) {
        tokens = .allocate(capacity: max(capacity, 1))
        writtenLengths = .allocate(capacity: max(capacity, 1))
    }

    deinit {
        tokens.deallocate()
        writtenLengths.deallocate()
    }

    /// Reports `token`'s request done, with `writtenLength` bytes written into its chain.
    public func complete(_ token: RequestToken, writtenLength: UInt32) {
        guard count < tokens.count else {
            overflowed += 1
            return
        }
        tokens[count] = token
        writtenLengths[count] = writtenLength
        count += 1
    }

    /// The completion at `index` (< count).
    public func entry(_ index: Int) -> (token: RequestToken, writtenLength: UInt32) {
        (tokens[index], writtenLengths[index])
    }

    public func removeAll() {
        count = 0
        overflowed = 0
    }
}
