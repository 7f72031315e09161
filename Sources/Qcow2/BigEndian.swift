/// qcow2 stores every number big-endian. Loads and stores at byte offsets of raw memory, no
/// alignment assumed.
extension UnsafeRawPointer {
    @inline(__always)
    func bigEndianUInt64(at offset: Int) -> UInt64 { UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    @inline(__always)
    func bigEndianUInt32(at offset: Int) -> UInt32 { UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    @inline(__always)
    func bigEndianUInt16(at offset: Int) -> UInt16 { UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
}

extension UnsafeMutableRawPointer {
    @inline(__always)
    func storeBigEndian(_ value: UInt64, at offset: Int) { storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self) }
    @inline(__always)
    func storeBigEndian(_ value: UInt32, at offset: Int) { storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self) }
}

extension UnsafeMutableRawPointer {
    @inline(__always)
    func bigEndianUInt64(at offset: Int) -> UInt64 { UnsafeRawPointer(self).bigEndianUInt64(at: offset) }
}
