import Testing
import VhostUserProtocol

@Suite("Round trips of random valid messages")
struct RoundTripTests {
    @Test func decodingWhatTheEncoderProducesGivesBackTheMessage() throws {
        var rng = SplitMix64(seed: 0x5EED_0001)
        var perRequest: [VhostUserRequest: Int] = [:]
        for _ in 0..<20_000 {
            let context = rng.context()
            let original = rng.message(rng.anyRequest(), context: context)
            let needReply = rng.oneIn(2)
            let (bytes, fds) = original.encoded(needReply: needReply)
            let header = try parseHeader(bytes)
            #expect(Int(header.size) == bytes.count - 12)
            #expect(header.flags == (needReply ? [.version1, .needReply] : .version1))
            #expect(MessageDecoder.requiredFileDescriptorCount(for: original).contains(fds))
            let decoded = try decodeMessage(bytes, fds: fds, context: context)
            guard decoded == original else {
                Issue.record("round trip changed \(original) into \(decoded)")
                return
            }
            perRequest[original.request, default: 0] += 1
        }
        #expect(perRequest.count == VhostUserRequest.allCases.count, "every request was generated")
    }

    @Test func decodingAnEncodedReplyGivesBackTheReply() throws {
        var rng = SplitMix64(seed: 0x5EED_0002)
        for _ in 0..<10_000 {
            let context = rng.context()
            let (reply, asked) = rng.reply(context: context)
            let (bytes, fds) = reply.encoded()
            let decoded = try decodeReply(bytes, fds: fds, answering: asked)
            guard decoded == reply else {
                Issue.record("reply round trip changed \(reply) into \(decoded)")
                return
            }
        }
    }

    @Test func decodingAnEncodedBackendMessageGivesBackTheMessage() throws {
        var rng = SplitMix64(seed: 0x5EED_0003)
        for _ in 0..<10_000 {
            let original = rng.backendMessage()
            let (bytes, fds) = original.encoded(needReply: rng.oneIn(2))
            let decoded = try decodeBackendMessage(bytes, fds: fds)
            guard decoded == original else {
                Issue.record("back-end round trip changed \(original) into \(decoded)")
                return
            }
            let ack = BackendAck(request: original.request, value: rng.edgyU64())
            #expect(try decodeBackendAck(ack.encoded(), answering: original.request) == ack)
        }
    }
}
