/// A command line the daemon refuses, with the reason it prints.
struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
