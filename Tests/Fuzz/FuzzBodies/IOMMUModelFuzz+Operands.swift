import IOMMUModel

extension IOMMUModelFuzz {
    /// The operands of the operations, read from the fuzzer's bytes (zeros past the end).
    ///
    /// Addresses and sizes are any 64-bit value, but most encodings land near a few anchors
    /// (0, the 1 GiB and 512 GiB boundaries, the page table's 2^48, the frame field's 2^52,
    /// 2^63, and, through 0 minus a few units, the top of the space) in steps of 1 byte, 4 KiB,
    /// 2 MiB or 1 GiB, so that ranges drawn from the same anchor overlap, touch and split each
    /// other; sizes include 0, `UInt64.max` and the sizes that end exactly at, or one byte past,
    /// the top of the space.
    struct Operands {
        private var input: FuzzInput

        init(_ data: UnsafeRawBufferPointer) {
            input = FuzzInput(data)
        }

        var isAtEnd: Bool { input.isAtEnd }

        mutating func byte() -> UInt8 { input.byte() }

        /// Eight bytes, little-endian.
        mutating func word() -> UInt64 {
            var value: UInt64 = 0
            for shift in stride(from: UInt64(0), to: 64, by: 8) { value |= UInt64(input.byte()) << shift }
            return value
        }

        /// Whether the next byte has its low bit set.
        mutating func flag() -> Bool { byte() & 1 != 0 }

        static let anchors: [UInt64] = [0, 1 << 30, 1 << 39, 1 << 48, 1 << 52, 1 << 63, 1 << 32]
        static let units: [UInt64] = [1, 1 << 12, 1 << 21, 1 << 30]

        /// Selector byte: bits 0–2 the anchor (7: eight raw bytes follow), bits 3–4 the unit,
        /// bits 5–7 a jitter; then a signed step count (-128...127 units from the anchor).
        mutating func address() -> UInt64 {
            let selector = byte()
            let anchor = Int(selector & 7)
            guard anchor < Self.anchors.count else { return word() }
            let unit = Self.units[Int(selector >> 3 & 3)]
            let steps = UInt64(bitPattern: Int64(Int8(bitPattern: byte())))
            return Self.anchors[anchor] &+ steps &* unit &+ jitter(selector >> 5)
        }

        /// 0 most of the time; otherwise +1, -1, or plus or minus a byte.
        mutating func jitter(_ choice: UInt8) -> UInt64 {
            switch choice & 7 {
            case 4: 1
            case 5: .max
            case 6: UInt64(byte())
            case 7: 0 &- UInt64(byte())
            default: 0
            }
        }

        /// A size for a range starting at `start`. Selector bits 0–2: 0 → 0, 1 → `UInt64.max`,
        /// 2 → up to the top of the space exactly, 3 → one byte past it, 7 → eight raw bytes,
        /// otherwise 1–256 units (bits 3–4) with a jitter (bits 5–7).
        mutating func size(from start: UInt64) -> UInt64 {
            let selector = byte()
            switch selector & 7 {
            case 0: return 0
            case 1: return .max
            case 2: return 0 &- start
            case 3: return (0 &- start) &+ 1
            case 7: return word()
            default:
                let unit = Self.units[Int(selector >> 3 & 3)]
                return (UInt64(byte()) + 1) &* unit &+ jitter(selector >> 5)
            }
        }

        /// Mostly a valid permission; with the top bit set, the raw byte (empty, unknown bits).
        mutating func permission() -> IOMMUPermission {
            let choice = byte()
            guard choice & 0x80 == 0 else { return IOMMUPermission(rawValue: choice & 0x7F) }
            return [IOMMUPermission.read, .write, .readWrite][Int(choice % 3)]
        }

        mutating func access() -> IOMMUAccess { flag() ? .write : .read }

        /// A range between two addresses (in either order).
        mutating func range() -> ClosedRange<UInt64> {
            let (a, b) = (address(), address())
            return min(a, b)...max(a, b)
        }
    }
}
