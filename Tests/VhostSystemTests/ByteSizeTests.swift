import Testing
import VhostSystem

@Suite("Sizes on command lines")
struct ByteSizeTests {
    @Test(arguments: [("4096", UInt64(4096)), ("4k", 4096), ("64K", 65536), ("1m", 1 << 20), ("2G", 2 << 30), ("1t", 1 << 40)])
    func parses(text: String, bytes: UInt64) {
        #expect(ByteSize.parse(text) == bytes)
    }

    @Test(arguments: ["", "k", "4kb", "-1", "1.5m", "lots", "99999999999t", "18446744073709551616"])
    func refuses(text: String) {
        #expect(ByteSize.parse(text) == nil)
    }
}
