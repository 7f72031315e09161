extension FuzzGuestMemory {
    /// The guest's view of `count` bytes at guest-physical `address`, or nil unless they lie
    /// inside one region.
    func guestBytes(at address: UInt64, count: Int) -> UnsafeMutableRawBufferPointer? {
        guard let offset = fileOffset(of: address, length: count) else { return nil }
        return UnsafeMutableRawBufferPointer(rebasing: guestBytes[offset..<(offset + count)])
    }

    /// The little-endian integer at guest-physical `address`, read byte by byte through the guest's
    /// view (not `RingMemory`: the models must not share code with the device), or nil unless it
    /// lies inside one region.
    func load<Value: FixedWidthInteger & UnsignedInteger>(_: Value.Type, at address: UInt64) -> Value? {
        let size = MemoryLayout<Value>.size
        guard let bytes = guestBytes(at: address, count: size) else { return nil }
        var value: Value = 0
        for index in (0..<size).reversed() {
            value = value << 8 | Value(bytes[index])
        }
        return value
    }

    /// Writes `value` little-endian at guest-physical `address`; false (and nothing written)
    /// unless it lies inside one region.
    @discardableResult
    func store<Value: FixedWidthInteger & UnsignedInteger>(_ value: Value, at address: UInt64) -> Bool {
        let size = MemoryLayout<Value>.size
        guard let bytes = guestBytes(at: address, count: size) else { return false }
        for index in 0..<size {
            bytes[index] = UInt8(truncatingIfNeeded: value >> (8 * index))
        }
        return true
    }

    /// The file ranges holding `length` bytes at guest-physical `address`, one per region the bytes
    /// run through (regions adjacent in guest-physical space), or nil unless every byte is mapped.
    func fileRanges(of address: UInt64, length: Int) -> [Range<Int>]? {
        var ranges: [Range<Int>] = []
        var cursor = address
        var remaining = length
        while remaining > 0 {
            guard let placement = Self.placements.first(where: { cursor >= $0.guestPhysicalStart && cursor < $0.guestPhysicalEnd })
            else { return nil }
            let offset = Int(cursor - placement.guestPhysicalStart)
            let piece = min(remaining, placement.size - offset)
            ranges.append((placement.fileOffset + offset)..<(placement.fileOffset + offset + piece))
            cursor += UInt64(piece)
            remaining -= piece
        }
        return ranges
    }

    /// Copies `source` to guest-physical `address`, across adjacent regions; false (and nothing
    /// written) unless every byte is mapped.
    @discardableResult
    func write(_ source: UnsafeRawBufferPointer, at address: UInt64) -> Bool {
        guard let ranges = fileRanges(of: address, length: source.count) else { return false }
        var copied = 0
        for range in ranges {
            UnsafeMutableRawBufferPointer(rebasing: guestBytes[range])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[copied..<(copied + range.count)]))
            copied += range.count
        }
        return true
    }
}
