/// Reads a fuzzer's bytes front to back; past the end every read gives zeros, so a body never
/// has to check lengths itself.
public struct FuzzInput {
    private let bytes: UnsafeRawBufferPointer
    private var cursor = 0

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    public var isAtEnd: Bool { cursor >= bytes.count }

    public mutating func byte() -> UInt8 {
        guard cursor < bytes.count else { return 0 }
        defer { cursor += 1 }
        return bytes[cursor]
    }

    /// Up to `count` bytes (fewer at the end of the input).
    public mutating func bytes(upTo count: Int) -> UnsafeRawBufferPointer {
        let available = max(0, min(count, bytes.count - cursor))
        defer { cursor += available }
        return UnsafeRawBufferPointer(rebasing: bytes[cursor..<(cursor + available)])
    }
}

extension FuzzInput {
    /// Four bytes, little-endian (zeros past the end).
    public mutating func uint32() -> UInt32 {
        var value: UInt32 = 0
        for shift in stride(from: 0, to: 32, by: 8) {
            value |= UInt32(byte()) << UInt32(shift)
        }
        return value
    }

    /// Eight bytes, little-endian (zeros past the end).
    public mutating func uint64() -> UInt64 {
        UInt64(uint32()) | UInt64(uint32()) << 32
    }
}
