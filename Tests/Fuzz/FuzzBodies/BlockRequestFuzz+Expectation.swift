extension BlockRequestFuzz {
    /// What the device must do with a request, from the virtio-blk rules (VIRTIO 1.2 §5.2.6) and
    /// the device's documented choices (the hostile-guest table in HostileGuestTests), worked out
    /// from the request's bytes alone:
    ///
    /// - no writable byte: no status, used length 0, nothing changes;
    /// - fewer than 16 readable bytes: IOERR;
    /// - IN: the writable bytes before the status are the data, a positive multiple of 512 inside
    ///   the disk, read; OUT: the readable bytes after the header likewise, written (IOERR on a
    ///   read-only device); FLUSH: OK; GET_ID: the serial into at least 20 bytes before the status;
    /// - DISCARD / WRITE_ZEROES (IOERR on a read-only device): 1 ... 32 whole 16-byte segments;
    ///   each in turn must have no flag but unmap (none at all for DISCARD), else UNSUPP, and lie
    ///   inside the disk, else IOERR; only when all pass are they applied, and read back zero;
    /// - any other type: UNSUPP.
    ///
    /// The used length is 1, plus the data for a successful IN or GET_ID.
    struct Expectation {
        /// What the device writes into the writable side before the status byte.
        enum Reply: Equatable {
            case nothing
            /// `count` bytes of the disk at byte `offset`.
            case disk(offset: Int, count: Int)
            case identifier
        }

        /// What happens to the disk.
        enum Effect: Equatable {
            case none
            /// The readable bytes `source` land at byte `offset`.
            case write(offset: Int, source: Range<Int>)
            /// These byte ranges read back zero.
            case zero([Range<Int>])
        }

        static let statusOK: UInt8 = 0
        static let statusIOError: UInt8 = 1
        static let statusUnsupported: UInt8 = 2

        /// nil when the chain has no writable byte.
        var status: UInt8?
        var usedLength: UInt32
        var reply = Reply.nothing
        var effect = Effect.none

        init(_ request: Request, readOnly: Bool, sectorCount: UInt64) {
            guard request.writableCount > 0 else {
                status = nil
                usedLength = 0
                return
            }
            status = Self.statusIOError
            usedLength = 1
            let stream = request.readable
            guard stream.count >= 16 else { return }
            let type = UInt32(truncatingIfNeeded: Self.littleEndian(stream, at: 0, size: 4))
            let sector = Self.littleEndian(stream, at: 8, size: 8)
            let room = request.writableCount - 1
            switch type {
            case Request.typeRead:
                guard room > 0, let offset = Self.diskOffset(sector: sector, byteCount: room, sectorCount: sectorCount) else {
                    return
                }
                (status, usedLength, reply) = (Self.statusOK, UInt32(room + 1), .disk(offset: offset, count: room))
            case Request.typeWrite:
                let count = stream.count - 16
                guard !readOnly, count > 0,
                      let offset = Self.diskOffset(sector: sector, byteCount: count, sectorCount: sectorCount) else {
                    return
                }
                (status, effect) = (Self.statusOK, .write(offset: offset, source: 16..<stream.count))
            case Request.typeFlush:
                status = Self.statusOK
            case Request.typeGetIdentifier:
                guard room >= 20 else { return }
                (status, usedLength, reply) = (Self.statusOK, 21, .identifier)
            case Request.typeDiscard, Request.typeWriteZeroes:
                guard !readOnly else { return }
                (status, effect) = Self.segments(stream, zeroing: type == Request.typeWriteZeroes, sectorCount: sectorCount)
            default:
                status = Self.statusUnsupported
            }
        }

        /// The status and the effect of a DISCARD or WRITE_ZEROES whose header is in `stream`.
        private static func segments(_ stream: [UInt8], zeroing: Bool, sectorCount: UInt64) -> (UInt8, Effect) {
            let payload = stream.count - 16
            guard payload > 0, payload % 16 == 0, payload / 16 <= 32 else { return (statusIOError, .none) }
            var zeroed: [Range<Int>] = []
            for start in stride(from: 16, to: stream.count, by: 16) {
                let sector = littleEndian(stream, at: start, size: 8)
                let sectors = littleEndian(stream, at: start + 8, size: 4)
                let flags = littleEndian(stream, at: start + 12, size: 4)
                let unmap = flags & 1 != 0
                if flags & ~1 != 0 || (unmap && !zeroing) { return (statusUnsupported, .none) }
                // At most max_discard_sectors / max_write_zeroes_sectors (4 GiB - 512 bytes) each.
                guard sectors <= UInt64(UInt32.max >> 9),
                      let offset = diskOffset(sector: sector, byteCount: Int(sectors) * 512, sectorCount: sectorCount) else {
                    return (statusIOError, .none)
                }
                zeroed.append(offset..<(offset + Int(sectors) * 512))
            }
            return (statusOK, .zero(zeroed))
        }

        /// The byte offset of `byteCount` bytes at `sector`, if they are whole sectors inside the
        /// disk (none at all is fine here; IN and OUT check for an empty transfer themselves).
        private static func diskOffset(sector: UInt64, byteCount: Int, sectorCount: UInt64) -> Int? {
            guard byteCount % 512 == 0, sector <= sectorCount, UInt64(byteCount / 512) <= sectorCount - sector else { return nil }
            return Int(sector) * 512
        }

        private static func littleEndian(_ bytes: [UInt8], at start: Int, size: Int) -> UInt64 {
            (0..<size).reduce(0) { $0 | UInt64(bytes[start + $1]) << (8 * $1) }
        }
    }
}
