/// The SHMEM_MAP / SHMEM_UNMAP payload (`VhostUserMMap`, 40 bytes):
/// `u8 shmid; u8 padding[7]; u64 fd_offset; u64 shm_offset; u64 len; u64 flags`.
///
/// From the SHMEM patch series (v11, November 2025), not yet in a released QEMU; `flags` is
/// kept raw (the series defines 0 = read-only, 1 = read-write).
public struct SharedMemoryMapping: Equatable, Hashable, Sendable {
    /// Which VIRTIO shared memory region.
    public let shmid: UInt8
    /// Offset in the accompanying fd (SHMEM_MAP).
    public let fdOffset: UInt64
    /// Offset in the shared memory region.
    public let shmOffset: UInt64
    /// Length of the mapping.
    public let length: UInt64
    public let flags: UInt64

    /// The encoded length.
    public static let byteCount = 40

    public init(shmid: UInt8, fdOffset: UInt64, shmOffset: UInt64, length: UInt64, flags: UInt64) {
        self.shmid = shmid
        self.fdOffset = fdOffset
        self.shmOffset = shmOffset
        self.length = length
        self.flags = flags
    }

    /// Parses the 40-byte payload; padding is ignored.
    ///
    /// - Throws: `.payloadLengthMismatch`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension SharedMemoryMapping: FixedSizePayload {
    static let payloadName = "shared memory mapping"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        shmid = try reader.readUInt8()
        try reader.skip(7)  // padding
        fdOffset = try reader.readUInt64()
        shmOffset = try reader.readUInt64()
        length = try reader.readUInt64()
        flags = try reader.readUInt64()
    }

    func write(to writer: inout ByteWriter) {
        writer.append(shmid)
        writer.appendZeros(7)
        writer.append(fdOffset)
        writer.append(shmOffset)
        writer.append(length)
        writer.append(flags)
    }
}
