/// The `flags` word of a message header.
///
/// Bits 0–1 hold the protocol version (always 1), bit 2 marks a reply, bit 3 asks for a
/// REPLY_ACK. Bits 4–31 are reserved.
public struct MessageFlags: OptionSet, Equatable, Sendable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Version 1 of the protocol in bits 0–1; every message carries it.
    public static let version1 = MessageFlags(rawValue: 0x1)
    /// The message is a reply.
    public static let reply = MessageFlags(rawValue: 0x4)
    /// The sender wants a u64 REPLY_ACK (only meaningful once REPLY_ACK is negotiated).
    public static let needReply = MessageFlags(rawValue: 0x8)

    /// The flags every reply carries: exactly version 1 and REPLY (0x5). QEMU 7.2 compares a
    /// reply's flags with 0x5 for equality, so NEED_REPLY is never echoed.
    public static let replyFlags: MessageFlags = [.version1, .reply]

    /// The two bits that hold the version number.
    public static let versionMask: UInt32 = 0x3
    /// Every bit this protocol version defines (version, REPLY, NEED_REPLY).
    public static let definedBits: UInt32 = 0xF

    /// The protocol version encoded in bits 0–1.
    public var version: UInt32 { rawValue & Self.versionMask }
}
