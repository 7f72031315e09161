import Testing
import VhostUserProtocol

@Suite("Message header")
struct MessageHeaderTests {
    @Test func parsesRequestFlagsAndSize() throws {
        let header = try parseHeader([0x05, 0, 0, 0, 0x09, 0, 0, 0, 0x48, 0, 0, 0])
        #expect(header == MessageHeader(request: 5, flags: [.version1, .needReply], size: 72))
    }

    @Test(arguments: [0, 11, 13, 20])
    func rejectsHeaderThatIsNotTwelveBytes(count: Int) {
        let bytes = [UInt8](repeating: 0, count: count)
        let error = thrownError { () throws(ProtocolError) in
            try bytes.withUnsafeBytes { raw in Result { () throws(ProtocolError) in try MessageHeader(parsing: raw) } }.get()
        }
        #expect(error == .wrongHeaderSize(count))
    }

    @Test(arguments: [UInt32(0x0), 0x2, 0x3, 0x6, 0xA])
    func rejectsVersionOtherThanOne(flags: UInt32) {
        let error = thrownError { () throws(ProtocolError) in try parseHeader(le32(1) + le32(flags) + le32(0)) }
        #expect(error == .badVersion(flags: flags))
    }

    @Test(arguments: [UInt32(0x11), 0x21, 0x1_0001, 0x8000_0001, 0xFFFF_FFF1])
    func rejectsReservedFlagBits(flags: UInt32) {
        let error = thrownError { () throws(ProtocolError) in try parseHeader(le32(1) + le32(flags) + le32(0)) }
        #expect(error == .reservedFlagBits(flags: flags))
    }

    @Test(arguments: [UInt32(4097), 65536, UInt32.max])
    func rejectsPayloadSizeOverTheLimit(size: UInt32) {
        let error = thrownError { () throws(ProtocolError) in try parseHeader(le32(1) + le32(1) + le32(size)) }
        #expect(error == .payloadTooLarge(size: size, limit: 4096))
    }

    @Test func acceptsPayloadSizeAtTheLimit() throws {
        let header = try parseHeader(le32(1) + le32(1) + le32(4096))
        #expect(header.size == 4096)
        #expect(MessageHeader.maximumPayloadSize == 4096)
    }

    @Test func acceptsEveryDefinedFlagCombination() throws {
        for flags: UInt32 in [0x1, 0x5, 0x9, 0xD] {
            #expect(try parseHeader(le32(1) + le32(flags) + le32(0)).flags.rawValue == flags)
        }
    }

    @Test func encodesLittleEndianFields() {
        let header = MessageHeader(request: 0x0102_0304, flags: .replyFlags, size: 0x0A0B_0C0D)
        #expect(header.encoded() == [0x04, 0x03, 0x02, 0x01, 0x05, 0, 0, 0, 0x0D, 0x0C, 0x0B, 0x0A])
    }

    @Test func encodesIntoABuffer() {
        let header = MessageHeader(request: 24, flags: .version1, size: 69)
        var buffer = [UInt8](repeating: 0xFF, count: 16)
        buffer.withUnsafeMutableBytes { header.encode(into: $0) }
        #expect(Array(buffer.prefix(12)) == header.encoded())
        #expect(Array(buffer.suffix(4)) == [0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func replyFlagsAreExactlyVersionAndReply() {
        #expect(MessageFlags.replyFlags.rawValue == 0x5)
    }

    @Test func headerErrorsCloseTheConnection() {
        #expect(ProtocolError.badVersion(flags: 0).isFramingError)
        #expect(ProtocolError.reservedFlagBits(flags: 0x11).isFramingError)
        #expect(ProtocolError.payloadTooLarge(size: 5000, limit: 4096).isFramingError)
        #expect(ProtocolError.wrongHeaderSize(3).isFramingError)
        #expect(ProtocolError.payloadSizeMismatchesHeader(headerSize: 8, actual: 4).isFramingError)
        #expect(!ProtocolError.unknownRequest(99).isFramingError)
        #expect(!ProtocolError.queueIndexOutOfRange(index: 3, count: 1).isFramingError)
    }
}
