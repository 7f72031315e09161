/// One benchmark figure: its median and spread over the repetitions.
struct Measurement {
    /// "translate", "invalidate", "update" or "build".
    var operation: String
    /// "range store", "range store + cache", "page table", "both (mirror)".
    var structure: String
    var mappings: Int
    /// The access pattern of a translate figure.
    var pattern: Workload.Pattern?
    /// Nanoseconds per operation, or milliseconds per build.
    var statistics: Statistics
    var unit: String
}
