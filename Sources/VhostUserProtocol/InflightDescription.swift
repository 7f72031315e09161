/// The GET/SET_INFLIGHT_FD payload (`VhostUserInflight`, 24 bytes):
/// `u64 mmap_size; u64 mmap_offset; u16 num_queues; u16 queue_size;` plus 4 bytes of padding.
///
/// In the GET_INFLIGHT_FD request only `numQueues` and `queueSize` are meaningful; the reply
/// fills in `mmapSize` and `mmapOffset` and carries the buffer's fd when `mmapSize` is not 0.
public struct InflightDescription: Equatable, Hashable, Sendable {
    /// Size of the shared in-flight tracking buffer.
    public let mmapSize: UInt64
    /// Offset of the buffer in the fd's mapping.
    public let mmapOffset: UInt64
    /// Number of queues the buffer covers.
    public let numQueues: UInt16
    /// Size of each queue.
    public let queueSize: UInt16

    /// The encoded length.
    public static let byteCount = 24

    public init(mmapSize: UInt64, mmapOffset: UInt64, numQueues: UInt16, queueSize: UInt16) {
        self.mmapSize = mmapSize
        self.mmapOffset = mmapOffset
        self.numQueues = numQueues
        self.queueSize = queueSize
    }

    /// Parses the 24-byte payload; the trailing padding is ignored.
    ///
    /// - Throws: `.payloadLengthMismatch`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ProtocolError) {
        self = try Self.parse(bytes)
    }
}

extension InflightDescription: FixedSizePayload {
    static let payloadName = "inflight description"

    init(from reader: inout ByteReader) throws(ProtocolError) {
        mmapSize = try reader.readUInt64()
        mmapOffset = try reader.readUInt64()
        numQueues = try reader.readUInt16()
        queueSize = try reader.readUInt16()
        try reader.skip(4)  // padding
    }

    func write(to writer: inout ByteWriter) {
        writer.append(mmapSize)
        writer.append(mmapOffset)
        writer.append(numQueues)
        writer.append(queueSize)
        writer.appendZeros(4)
    }
}
