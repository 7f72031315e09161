/// The bytes verify mode writes to a block: 64-bit words derived from the run's seed, the
/// block number and the word's position, so a block read back from elsewhere (a wrong offset,
/// a stale buffer, another run) does not match.
enum VerifyPattern {
    static func word(seed: UInt64, block: UInt64, index: Int) -> UInt64 {
        var value = seed &+ block &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }

    static func fill(_ buffer: UnsafeMutableRawPointer, count: Int, seed: UInt64, block: UInt64) {
        for index in 0..<count / 8 {
            buffer.storeBytes(of: word(seed: seed, block: block, index: index), toByteOffset: 8 * index, as: UInt64.self)
        }
    }

    static func matches(_ buffer: UnsafeRawPointer, count: Int, seed: UInt64, block: UInt64) -> Bool {
        for index in 0..<count / 8
        where buffer.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self) != word(seed: seed, block: block, index: index) {
            return false
        }
        return true
    }
}
