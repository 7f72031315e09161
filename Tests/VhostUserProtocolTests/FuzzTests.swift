import Testing
import VhostUserProtocol

/// Random and mutated input must only ever throw or succeed: a trap would kill the test
/// process. What does decode is checked: it is the request its header names, it arrived with a
/// number of descriptors that request allows, and it survives a second round trip unchanged.
/// Each test counts what decoded (the seeds are fixed, so the counts are too) and which
/// requests, so that a generator that stopped producing valid input cannot pass unnoticed.
@Suite("Hostile input never traps")
struct FuzzTests {
    /// What a run decoded.
    struct Decoded {
        var count = 0
        var requests: Set<VhostUserRequest> = []
    }

    /// Decodes `bytes`; on success checks what it decoded and records it.
    func decodeAndCheck(_ bytes: [UInt8], fds: Int, context: DecodingContext, into decoded: inout Decoded) {
        guard let message = try? decodeMessage(bytes, fds: fds, context: context) else { return }
        let headerRequest = bytes.count >= 4 ? UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24 : 0
        #expect(message.request.rawValue == headerRequest, "\(message) decoded from a header naming \(headerRequest)")
        #expect(MessageDecoder.requiredFileDescriptorCount(for: message).contains(fds))
        let (again, againFds) = message.encoded()
        #expect((try? decodeMessage(again, fds: againFds, context: context)) == message)
        decoded.count += 1
        decoded.requests.insert(message.request)
    }

    /// Purely random bytes almost never frame a message (version 1, no reserved flag bit, a
    /// known request, a matching size): the decoder must refuse them all without trapping.
    @Test func randomBytesNeverTrapTheDecoder() {
        var rng = SplitMix64(seed: 0xF022_0001)
        var decoded = Decoded()
        for _ in 0..<20_000 {
            let count = rng.below(320)
            decodeAndCheck(rng.bytes(count), fds: rng.below(10), context: rng.context(), into: &decoded)
        }
        #expect(decoded.count == 0, "random bytes framed \(decoded.count) messages: \(decoded.requests)")
    }

    @Test func randomPayloadsBehindPlausibleHeadersNeverTrapTheDecoder() {
        var rng = SplitMix64(seed: 0xF022_0002)
        var decoded = Decoded()
        for _ in 0..<30_000 {
            let request = rng.oneIn(16) ? UInt32(truncatingIfNeeded: rng.next()) : 1 + rng.u32(below: 44)
            // Sizes near the ones requests carry, plus anything up to the limit.
            let sizes = [0, 8, 16, 24, 32, 40, 13, 69, 72, 264, 268]
            let count = rng.oneIn(4) ? rng.below(4097) : sizes[rng.below(sizes.count)]
            var payload = rng.bytes(count)
            if rng.oneIn(2), payload.count >= 8 {
                // Keep the leading count/size fields small so variable payloads parse further.
                payload[1] = 0
                payload[2] = 0
                payload[3] = 0
                payload[0] %= 10
            }
            let flags: UInt32 = rng.oneIn(8) ? UInt32(truncatingIfNeeded: rng.next()) : [0x1, 0x9][rng.below(2)]
            let bytes = le32(request) + le32(flags) + le32(UInt32(payload.count)) + payload
            decodeAndCheck(bytes, fds: rng.below(10), context: rng.context(), into: &decoded)
        }
        // 132 messages of 26 requests with this seed.
        #expect(decoded.count >= 100 && decoded.requests.count >= 20, "\(decoded.count) decoded: \(decoded.requests)")
    }

    @Test func mutatedQEMUFixturesNeverTrapTheDecoder() {
        var rng = SplitMix64(seed: 0xF022_0003)
        var decoded = Decoded()
        for _ in 0..<30_000 {
            let fixture = qemuFixtures[rng.below(qemuFixtures.count)]
            var bytes = fixture.bytes
            for _ in 0..<(1 + rng.below(4)) {
                let index = rng.below(bytes.count)
                bytes[index] = rng.oneIn(2) ? UInt8(truncatingIfNeeded: rng.next()) : bytes[index] ^ (UInt8(1) << UInt8(rng.below(8)))
            }
            if rng.oneIn(8) {
                bytes = Array(bytes.prefix(rng.below(bytes.count + 1)))
            }
            if rng.oneIn(4), bytes.count >= 12 {
                // Repair the size field so the payload rules, not framing, are exercised.
                let size = le32(UInt32(bytes.count - 12))
                bytes.replaceSubrange(8..<12, with: size)
            }
            let fds = rng.oneIn(4) ? rng.below(10) : fixture.fds
            decodeAndCheck(bytes, fds: fds, context: rng.oneIn(2) ? permissiveContext : rng.context(), into: &decoded)
        }
        // 3278 messages, every request the fixtures cover, with this seed.
        #expect(decoded.count >= 3000, "\(decoded.count) decoded")
        #expect(decoded.requests == Set(qemuFixtures.map(\.expected.request)),
                "requests decoded: \(decoded.requests)")
    }

    /// Replies and back-end messages: random bytes, random payloads behind a plausible header,
    /// and valid ones with a few bytes flipped. What decodes answers the request it was asked
    /// for (a reply, an ack) and is counted.
    @Test func randomBytesNeverTrapTheReplyAndBackendDecoders() {
        var rng = SplitMix64(seed: 0xF022_0004)
        var replies = 0
        var acks = 0
        var backendMessages = 0
        for _ in 0..<20_000 {
            let context = rng.context()
            var (valid, asked) = rng.reply(context: context)
            var bytes: [UInt8]
            switch rng.below(3) {
            case 0:
                // A valid reply with up to three bytes flipped.
                bytes = valid.encoded().bytes
                for _ in 0..<rng.below(4) where !bytes.isEmpty {
                    bytes[rng.below(bytes.count)] ^= UInt8(1) << UInt8(rng.below(8))
                }
            case 1:
                bytes = rng.bytes(rng.below(300))
                if bytes.count >= 12 {
                    let code = rng.oneIn(2) ? asked.request.rawValue : 1 + rng.u32(below: 10)
                    bytes.replaceSubrange(0..<12, with: le32(code) + le32(rng.oneIn(2) ? 0x5 : 0x1) + le32(UInt32(bytes.count - 12)))
                }
            default:
                bytes = rng.bytes(rng.below(300))
                asked = rng.message(rng.anyRequest(), context: context)
                valid = .ack(request: asked.request, value: 0)
            }
            let fds = rng.below(3)
            if let reply = try? decodeReply(bytes, fds: fds, answering: asked) {
                #expect(reply.request == asked.request, "\(reply) answers \(asked)")
                replies += 1
            }
            if (try? decodeBackendMessage(bytes, fds: fds)) != nil { backendMessages += 1 }
            let backendRequest = BackendRequest.allCases[rng.below(10)]
            if let ack = try? decodeBackendAck(bytes, fds: fds, answering: backendRequest) {
                #expect(ack.request == backendRequest, "\(ack) answers \(backendRequest)")
                acks += 1
            }
        }
        // 1012 replies, 15 acks, 3 back-end messages with this seed; replies come mostly from the
        // flipped valid ones, which must still decode when the flip missed what is checked.
        #expect(replies >= 900, "\(replies) replies, \(acks) acks, \(backendMessages) back-end messages decoded")
    }

    @Test func randomBytesNeverTrapThePayloadParsers() {
        var rng = SplitMix64(seed: 0xF022_0005)
        for _ in 0..<20_000 {
            var bytes = rng.bytes(rng.below(300))
            if rng.oneIn(2), bytes.count >= 8 {
                bytes[0] %= 10
                bytes[1] = 0
                bytes[2] = 0
                bytes[3] = 0
                bytes[5] = 0
                bytes[6] = 0
                bytes[7] = 0
            }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try MemoryTableDescription(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try ConfigAccess(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try MemoryRegionDescription(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try SingleMemoryRegion(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try VringAddress(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try VringFileIndex(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try VringState(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try IOTLBMessage(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try InflightDescription(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try LogDescription(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try DeviceStateTransfer(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try SharedObjectID(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try VringAreaDescription(parsing: payload) }
            _ = try? parsePayload(bytes) { payload throws(ProtocolError) in try SharedMemoryMapping(parsing: payload) }
            _ = try? parsePayload(Array(bytes.prefix(12))) { payload throws(ProtocolError) in try MessageHeader(parsing: payload) }
        }
    }
}
