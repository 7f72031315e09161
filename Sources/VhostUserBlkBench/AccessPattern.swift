/// Where successive requests of a queue go.
public enum AccessPattern: String, Sendable, Codable, CaseIterable {
    /// Uniformly random block-aligned offsets over the span.
    case random
    /// Consecutive blocks; each queue walks its own stripe of the span, wrapping at its end.
    case sequential
}
