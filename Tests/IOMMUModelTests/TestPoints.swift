/// Turns random words into addresses that collide often and sit at the edges of the space:
/// most land in 48-byte neighbourhoods of 0, of 2^63 and of `UInt64.max`, the rest anywhere.
enum TestPoints {
    static func point(_ word: UInt64) -> UInt64 {
        let offset = (word >> 3) % 48
        switch word & 7 {
        case 0, 1, 2: return offset
        case 3, 4, 5: return UInt64.max - offset
        case 6: return (1 << 63) - 24 + offset
        default: return word
        }
    }

    /// A range between two decoded points.
    static func range(_ a: UInt64, _ b: UInt64) -> ClosedRange<UInt64> {
        let (x, y) = (point(a), point(b))
        return min(x, y)...max(x, y)
    }

    /// A small size (1...64) or, now and then, a huge one.
    static func size(_ word: UInt64) -> UInt64 {
        switch word & 3 {
        case 0: return word >> 2
        default: return (word >> 2) % 64 + 1
        }
    }

    /// An alignment: 0, 1, or a power of two up to 64.
    static func alignment(_ word: UInt64) -> UInt64 {
        let choice = word % 9
        return choice == 0 ? 0 : 1 << (choice - 1)
    }
}
