/// Why an inflight tracking region (handed back by the front end with SET_INFLIGHT_FD) cannot
/// be used. The front end controls these bytes: every field is checked before it is trusted.
public enum InflightError: Error, Equatable, Sendable {
    /// The region is smaller than `needed` bytes for its queue size.
    case regionTooSmall(bytes: Int, needed: Int)
    /// A version other than 0 (never used) or 1.
    case unsupportedVersion(UInt16)
    /// desc_num differs from the ring's size.
    case queueSizeMismatch(region: UInt16, ring: Int)
    /// An inflight flag other than 0 or 1.
    case invalidInflightFlag(head: Int, value: UInt8)
    /// The last batch (used->idx − used_idx entries) is longer than the queue.
    case lastBatchTooLong(Int)
    /// The last-batch list leads to a head outside the ring.
    case batchHeadOutOfRange(UInt16)
    /// More requests recorded in flight than the ring has entries for.
    case tooManyInflight(Int)
}
