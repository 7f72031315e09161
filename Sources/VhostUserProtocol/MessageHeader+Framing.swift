extension MessageHeader {
    /// A request as it goes on the wire, from either side: header (flags 0x1, or 0x9 with
    /// `needReply`) followed by `payload`.
    static func framedRequest(_ request: UInt32, needReply: Bool, payload: [UInt8]) -> [UInt8] {
        var flags = MessageFlags.version1
        if needReply {
            flags.insert(.needReply)
        }
        let header = MessageHeader(request: request, flags: flags, size: UInt32(truncatingIfNeeded: payload.count))
        var writer = ByteWriter(capacity: MessageHeader.byteCount + payload.count)
        header.write(to: &writer)
        writer.append(contentsOf: payload)
        return writer.bytes
    }
}
