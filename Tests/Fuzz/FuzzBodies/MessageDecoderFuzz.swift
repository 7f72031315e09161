import VhostUserProtocol
import VirtioSpec

/// Fuzz body: a sequence of front-end messages through `MessageDecoder`, the context following
/// what the messages negotiate (as the connection's state machine does).
///
/// Input: one byte choosing the starting context, then per message a 12-byte header, one byte
/// of fd count (0–8) and the payload (the header's size, or what is left). Properties checked,
/// beyond "never traps": a message that decodes re-encodes to a message that decodes to the same
/// value with the same fd count, and its fd count is one the decoder allows.
public enum MessageDecoderFuzz {
    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let start = input.byte()
        var context = DecodingContext(
            queueCount: UInt32(start & 0x7) + 1,
            offeredFeatures: VirtioFeatures(rawValue: ~0),
            negotiatedProtocolFeatures: start & 0x8 != 0 ? ProtocolFeatures(rawValue: ~0) : [],
            protocolFeaturesEnabled: start & 0x10 != 0,
            negotiatedFeatures: start & 0x20 != 0 ? VirtioFeatures(rawValue: ~0) : [],
            offeredProtocolFeatures: start & 0x40 != 0 ? ProtocolFeatures(rawValue: ~0) : nil)
        while !input.isAtEnd {
            let headerBytes = input.bytes(upTo: MessageHeader.byteCount)
            let fds = Int(input.byte() % 9)
            guard headerBytes.count == MessageHeader.byteCount,
                  let header = try? MessageHeader(parsing: headerBytes) else { return }
            let payload = input.bytes(upTo: Int(min(header.size, 4096)))
            guard let message = try? MessageDecoder.decode(header: header, payload: payload, fileDescriptorCount: fds,
                                                           context: context) else { continue }
            check(message, fds: fds, context: context)
            switch message {
            case .setFeatures(let features): context.negotiatedFeatures = features
            case .setProtocolFeatures(let features): context.negotiatedProtocolFeatures = features
            default: break
            }
        }
    }

    private static func check(_ message: FrontEndMessage, fds: Int, context: DecodingContext) {
        if !MessageDecoder.requiredFileDescriptorCount(for: message).contains(fds) {
            fatalError("decoded \(message) with \(fds) fds, outside \(MessageDecoder.requiredFileDescriptorCount(for: message))")
        }
        let (bytes, _) = message.encoded()
        let again: FrontEndMessage? = bytes.withUnsafeBytes { raw in
            guard let header = try? MessageHeader(parsing: UnsafeRawBufferPointer(rebasing: raw[0..<MessageHeader.byteCount])) else {
                return nil
            }
            return try? MessageDecoder.decode(header: header, payload: UnsafeRawBufferPointer(rebasing: raw[MessageHeader.byteCount...]),
                                              fileDescriptorCount: fds, context: context)
        }
        if again != message {
            fatalError("\(message) re-encoded decodes to \(String(describing: again))")
        }
    }
}
