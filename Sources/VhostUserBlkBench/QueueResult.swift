import Histogram

/// What one queue measured.
struct QueueResult: Sendable {
    var reads = 0
    var writes = 0
    var bytes: UInt64 = 0
    /// Requests completed with a status other than VIRTIO_BLK_S_OK.
    var ioErrors = 0
    /// Blocks read back in verify mode that did not hold the pattern written.
    var mismatches = 0
    /// Latency from submit to harvest, in nanoseconds.
    var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000_000,
                                    numberOfSignificantValueDigits: .three)
    var error: BenchError?
}
