/// Per-queue request counters, owned by the queue's worker (no atomics needed).
struct BlockRequestStatistics {
    var reads = 0
    var writes = 0
    var flushes = 0
    var identifiers = 0
    var discards = 0
    var writeZeroes = 0
    var unsupported = 0
    var errors = 0
    /// Requests in more pieces than a slot's iovecs, waited for in `submit`.
    var scattered = 0
    /// Chains without a writable status byte: nothing can be reported to the driver.
    var malformed = 0
}
