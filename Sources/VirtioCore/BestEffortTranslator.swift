/// Walks a chain the device will fail rather than serve (its buffers fault behind a vIOMMU):
/// the same walk, with the same ring rules, over a translator that never defers. A buffer its
/// base defers becomes an inaccessible segment, except, for a device-writable buffer, its last
/// byte when that byte alone translates (where virtio devices put their status). The device
/// then writes its error status if it can and touches nothing else.
///
/// Indirect tables are not tolerated: a table that cannot be read cannot be walked, and the
/// walk defers as usual.
public struct BestEffortTranslator<Base: DescriptorAddressTranslator>: DescriptorAddressTranslator {
    public typealias Address = Base.Address

    public let base: Base

    public init(_ base: Base) {
        self.base = base
    }

    public var memory: GuestMemory { base.memory }

    public func pointer(_ address: Address, length: Int) -> UnsafeMutableRawPointer? {
        base.pointer(address, length: length)
    }

    /// Not tolerated: a table that faults leaves the walk deferred.
    public func tableSegments(_ address: Address, length: Int,
                              into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        base.tableSegments(address, length: length, into: buffer)
    }

    public func segments(_ address: Address, length: Int,
                         into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        segments(address, length: length, deviceWrites: false, into: buffer)
    }

    public func segments(_ address: Address, length: Int, deviceWrites: Bool,
                         into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        let answer = base.segments(address, length: length, deviceWrites: deviceWrites, into: buffer)
        guard answer == .deferred, length > 0 else { return answer }
        // The walk checked address + length for overflow before asking.
        let last = address.rawValue &+ UInt64(length - 1)
        if deviceWrites, buffer.count >= 2,
           case .translated(1) = base.segments(Address(rawValue: last), length: 1, deviceWrites: true,
                                               into: UnsafeMutableBufferPointer(rebasing: buffer[1..<2])) {
            if length == 1 {
                buffer[0] = buffer[1]
                return .translated(segmentCount: 1)
            }
            buffer[0] = .inaccessible(length: length - 1)
            return .translated(segmentCount: 2)
        }
        guard buffer.count >= 1 else { return .needsMoreSegments }
        buffer[0] = .inaccessible(length: length)
        return .translated(segmentCount: 1)
    }
}
