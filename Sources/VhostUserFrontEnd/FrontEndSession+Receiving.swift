#if canImport(Glibc)
import Glibc
#endif
import VhostSystem
import VhostUserProtocol

extension FrontEndSession {
    /// Reads one message (header, then `size` payload bytes) within `timeoutMilliseconds` in
    /// total.
    ///
    /// - Returns: nil if not a single byte arrived before the deadline.
    /// - Throws: `.replyTimeout` when a message started but did not complete in time,
    ///   `.connectionClosed`, `.transportFailed`, and `.invalidReply(.payloadTooLarge)` for a
    ///   header whose payload cannot be read.
    func readMessage(request: VhostUserRequest?, timeoutMilliseconds: Int) throws(FrontEndError) -> FrontEndReceivedMessage? {
        let deadline = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        var descriptors: [OwnedFileDescriptor] = []
        guard let headerBytes = try receive(
            count: MessageHeader.byteCount, deadline: deadline, request: request,
            timeoutMilliseconds: timeoutMilliseconds, nilIfSilent: true, descriptors: &descriptors)
        else {
            return nil
        }
        let header = MessageHeader(
            request: Self.littleEndianUInt32(headerBytes, at: 0),
            flags: MessageFlags(rawValue: Self.littleEndianUInt32(headerBytes, at: 4)),
            size: Self.littleEndianUInt32(headerBytes, at: 8))
        guard let size = Int(exactly: header.size), size <= MessageHeader.maximumPayloadSize else {
            throw .invalidReply(
                request: request, .payloadTooLarge(size: header.size, limit: MessageHeader.maximumPayloadSize))
        }
        let payload = try receive(
            count: size, deadline: deadline, request: request, timeoutMilliseconds: timeoutMilliseconds,
            nilIfSilent: false, descriptors: &descriptors) ?? []
        return FrontEndReceivedMessage(header: header, payload: payload, descriptors: descriptors)
    }

    /// Reads exactly `count` bytes before `deadline`, adding the descriptors that come with
    /// them to `descriptors`.
    ///
    /// - Returns: nil if `nilIfSilent` and the deadline passed before the first byte.
    private func receive(
        count: Int, deadline: ContinuousClock.Instant, request: VhostUserRequest?, timeoutMilliseconds: Int,
        nilIfSilent: Bool, descriptors: inout [OwnedFileDescriptor]
    ) throws(FrontEndError) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let ready: Int
            do throws(SystemError) {
                ready = try readiness.wait(timeoutMilliseconds: Self.milliseconds(until: deadline))
            } catch {
                throw .transportFailed(request: request, error)
            }
            if ready == 0 {
                guard ContinuousClock.now >= deadline else {
                    continue  // interrupted
                }
                if nilIfSilent && filled == 0 {
                    return nil
                }
                throw .replyTimeout(request: request, milliseconds: timeoutMilliseconds)
            }
            let offset = filled
            let result: Result<UnixSocket.Received, SystemError> = bytes.withUnsafeMutableBytes { buffer in
                Result { () throws(SystemError) in
                    try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]), dontWait: true)
                }
            }
            switch result {
            case .success(let part):
                descriptors += part.descriptors
                if part.byteCount == 0 {
                    throw .connectionClosed(request: request)
                }
                filled += part.byteCount
            case .failure(let error):
                if error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    continue  // readable was reported but the data went elsewhere; wait again
                }
                if error.errno == ECONNRESET {
                    throw .connectionClosed(request: request)
                }
                throw .transportFailed(request: request, error)
            }
        }
        return bytes
    }

    /// Milliseconds left until `deadline`, rounded up, 0 once it has passed.
    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        guard remaining > .zero else {
            return 0
        }
        let (seconds, attoseconds) = remaining.components
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        let milliseconds = seconds * 1000 + (attoseconds + attosecondsPerMillisecond - 1) / attosecondsPerMillisecond
        return Int32(clamping: milliseconds)
    }

    private static func littleEndianUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { value, index in value | UInt32(bytes[offset + index]) << (8 * index) }
    }
}
