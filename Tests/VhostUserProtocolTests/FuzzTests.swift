import Testing
import VhostUserProtocol

/// Random and mutated input must only ever throw or succeed. A trap would kill the test
/// process, so reaching the end is the assertion; anything that does decode must survive a
/// second round trip unchanged.
@Suite("Hostile input never traps")
struct FuzzTests {
    /// Decodes `bytes`; on success checks that re-encoding and decoding again is stable.
    /// Returns whether it decoded.
    @discardableResult
    func decodeAndCheck(_ bytes: [UInt8], fds: Int, context: DecodingContext) -> Bool {
        guard let message = try? decodeMessage(bytes, fds: fds, context: context) else {
            return false
        }
        #expect(MessageDecoder.requiredFileDescriptorCount(for: message).contains(fds))
        let (again, againFds) = message.encoded()
        #expect((try? decodeMessage(again, fds: againFds, context: context)) == message)
        return true
    }

    @Test func randomBytesNeverTrapTheDecoder() {
        var rng = SplitMix64(seed: 0xF022_0001)
        for _ in 0..<20_000 {
            let count = rng.below(320)
            decodeAndCheck(rng.bytes(count), fds: rng.below(10), context: rng.context())
        }
    }

    @Test func randomPayloadsBehindPlausibleHeadersNeverTrapTheDecoder() {
        var rng = SplitMix64(seed: 0xF022_0002)
        var decoded = 0
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
            if decodeAndCheck(bytes, fds: rng.below(10), context: rng.context()) {
                decoded += 1
            }
        }
        #expect(decoded > 0, "some random payloads should be valid")
    }

    @Test func mutatedQEMUFixturesNeverTrapTheDecoder() {
        var rng = SplitMix64(seed: 0xF022_0003)
        var decoded = 0
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
            if decodeAndCheck(bytes, fds: fds, context: rng.oneIn(2) ? permissiveContext : rng.context()) {
                decoded += 1
            }
        }
        #expect(decoded > 0)
    }

    @Test func randomBytesNeverTrapTheReplyAndBackendDecoders() {
        var rng = SplitMix64(seed: 0xF022_0004)
        for _ in 0..<20_000 {
            let context = rng.context()
            let asked = rng.message(rng.anyRequest(), context: context)
            var bytes = rng.bytes(rng.below(300))
            if rng.oneIn(2), bytes.count >= 12 {
                let code = rng.oneIn(2) ? asked.request.rawValue : 1 + rng.u32(below: 10)
                bytes.replaceSubrange(0..<12, with: le32(code) + le32(rng.oneIn(2) ? 0x5 : 0x1) + le32(UInt32(bytes.count - 12)))
            }
            let fds = rng.below(3)
            _ = try? decodeReply(bytes, fds: fds, answering: asked)
            _ = try? decodeBackendMessage(bytes, fds: fds)
            _ = try? decodeBackendAck(bytes, fds: fds, answering: BackendRequest.allCases[rng.below(10)])
        }
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
