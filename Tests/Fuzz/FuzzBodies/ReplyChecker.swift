import VhostSystem

/// Reads what the back end sent the fuzzed front end and checks each reply's header: version
/// 1 with the REPLY flag, a request code the front end sent, a payload within the limit.
struct ReplyChecker {
    private var pending: [UInt8] = []
    private var buffer = [UInt8](repeating: 0, count: 8192)

    mutating func drain(_ socket: UnixSocket, sentRequests: Set<UInt32>) {
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                // Descriptors that came with a reply (GET_INFLIGHT_FD) close when the result goes.
                (try? socket.receive(into: raw, dontWait: true))?.byteCount ?? 0
            }
            guard count > 0 else { break }
            pending.append(contentsOf: buffer[0..<count])
        }
        while pending.count >= 12 {
            let request = Self.word(pending, at: 0)
            let flags = Self.word(pending, at: 4)
            let size = Self.word(pending, at: 8)
            if flags != 0x5 || !sentRequests.contains(request) || size > 4096 {
                fatalError("malformed reply: request \(request), flags \(flags), size \(size); sent \(sentRequests.sorted())")
            }
            guard pending.count >= 12 + Int(size) else { return }
            pending.removeFirst(12 + Int(size))
        }
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << UInt32(8 * $1) }
    }
}
