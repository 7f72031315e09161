/// How the front end learns that requests completed.
public enum CompletionMode: String, Sendable, Codable, CaseIterable {
    /// Sleep on the queue's call eventfd, as a guest waits for an interrupt.
    case eventfd
    /// Spin on the used ring's index with interrupts suppressed (one core per queue).
    case polling
}
