extension BlockRequestFuzz {
    /// One request as the input describes it, already laid out as the bytes of its chain: the
    /// device-readable stream (header, then payload) and the device-writable byte count, each
    /// cut into descriptors. Request encoding:
    ///
    /// | bytes | meaning |
    /// |-------|---------|
    /// | 1 | kind (mod 8): IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES, a type from the next byte, a type from the next 4 bytes |
    /// | 1 | shape, bits: 0 reserved (ioprio) from 4 bytes; 1 sector from 8 bytes (else one byte, near the capacity); 2 data length from 2 bytes (else one byte: sectors, or bytes for GET_ID); 3 no status byte; 4 one more readable byte (a read-only "status"); 5 header cut to a length from one byte; 6 indirect; 7 data on the wrong side |
    /// | 1 | descriptors: readable pieces 1 + b mod 4, writable 1 + (b >> 2) mod 4; bit 4 a zero-length descriptor on each side at a wild address |
    /// | 1 | placement: where the buffers start in guest memory, and the gap between them |
    /// | … | the fields the shape asks for, then readable data (OUT's, as long as the input lasts, then a pattern) or DISCARD / WRITE_ZEROES segments: a count, then per segment a byte (bit 7: 16 raw bytes follow; else bit 0 unmap, bit 1 an unknown flag, then sector and sector-count bytes) |
    /// | … | one byte per cut: where the readable bytes, then the writable ones, are cut into pieces |
    struct Request: CustomStringConvertible {
        /// The readable bytes, in chain order (header first).
        var readable: [UInt8] = []
        /// Device-writable bytes (data, then the status byte when there is one).
        var writableCount = 0
        /// Lengths of the readable descriptors (they add up to `readable.count`; some may be 0).
        var readablePieces: [Int] = []
        /// Lengths of the writable descriptors (they add up to `writableCount`; some may be 0).
        var writablePieces: [Int] = []
        /// Add a zero-length descriptor at a wild address after the first piece of each side.
        var zeroLengthExtras = false
        var indirect = false
        /// Start of the first buffer in the data area, and the gap between buffers.
        var placementStart = 0
        var placementGap = 0

        static let typeRead: UInt32 = 0
        static let typeWrite: UInt32 = 1
        static let typeFlush: UInt32 = 4
        static let typeGetIdentifier: UInt32 = 8
        static let typeDiscard: UInt32 = 11
        static let typeWriteZeroes: UInt32 = 13

        /// The next request, or nil at the end of the input.
        init?(_ input: inout FuzzInput, sectorCount: UInt64) {
            guard !input.isAtEnd else { return nil }
            let kind = input.byte()
            let shape = input.byte()
            let pieces = input.byte()
            let placement = input.byte()
            placementStart = Int(placement) * 240
            placementGap = Int(placement & 7)
            indirect = shape & 0x40 != 0
            zeroLengthExtras = pieces & 0x10 != 0

            let type: UInt32
            switch kind % 8 {
            case 0: type = Self.typeRead
            case 1: type = Self.typeWrite
            case 2: type = Self.typeFlush
            case 3: type = Self.typeGetIdentifier
            case 4: type = Self.typeDiscard
            case 5: type = Self.typeWriteZeroes
            case 6: type = UInt32(input.byte())
            default: type = FuzzGuestInteger.next(UInt32.self, from: &input)
            }
            let reserved = shape & 1 != 0 ? FuzzGuestInteger.next(UInt32.self, from: &input) : 0
            let sector = shape & 2 != 0
                ? FuzzGuestInteger.next(UInt64.self, from: &input) : UInt64(input.byte()) % (sectorCount + 8)
            let headerLength = shape & 0x20 != 0 ? Int(input.byte() % 16) : 16
            let dataLength: Int
            if shape & 4 != 0 {
                dataLength = Int(FuzzGuestInteger.next(UInt16.self, from: &input))
            } else {
                let lengthByte = Int(input.byte())
                dataLength = type == Self.typeGetIdentifier ? lengthByte % 48 : lengthByte % 136 * 512
            }

            var header: [UInt8] = []
            for (value, size) in [(UInt64(type), 4), (UInt64(reserved), 4), (sector, 8)] {
                for index in 0..<size { header.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
            }
            readable = Array(header.prefix(headerLength))
            // OUT reads its data from the readable side, the others write it; bit 7 swaps them.
            let dataIsReadable = (type == Self.typeWrite) != (shape & 0x80 != 0)
            if type == Self.typeDiscard || type == Self.typeWriteZeroes {
                readable += Self.segmentList(&input, sectorCount: sectorCount)
            } else if dataIsReadable {
                let given = input.bytes(upTo: dataLength)
                readable += given
                readable += (given.count..<dataLength).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
            } else {
                writableCount = dataLength
            }
            if shape & 0x10 != 0 { readable.append(0xA5) }
            if shape & 0x08 == 0 { writableCount += 1 }

            readablePieces = Self.cut(readable.count, into: 1 + Int(pieces % 4), &input)
            writablePieces = Self.cut(writableCount, into: 1 + Int((pieces >> 2) % 4), &input)
        }

        /// The header fields (as far as the readable bytes go) and the chain's shape, for messages.
        var description: String {
            let header = readable.prefix(16).map { String($0, radix: 16) }.joined(separator: " ")
            return "request [header \(header)] with \(readable.count) readable bytes in \(readablePieces), \(writableCount) writable in \(writablePieces)\(indirect ? ", indirect" : "")"
        }

        /// DISCARD / WRITE_ZEROES segments: mostly plausible ones, sometimes raw bytes.
        private static func segmentList(_ input: inout FuzzInput, sectorCount: UInt64) -> [UInt8] {
            let count = Int(input.byte() % 36)
            var bytes: [UInt8] = []
            for _ in 0..<count {
                let form = input.byte()
                if form & 0x80 != 0 {
                    bytes += input.bytes(upTo: 16)
                    bytes += [UInt8](repeating: 0, count: (16 - bytes.count % 16) % 16)
                    continue
                }
                let sector = UInt64(input.byte()) % (sectorCount + 8)
                let sectors = UInt32(input.byte()) % UInt32(sectorCount + 12)
                let flags = UInt32(form & 3)
                for (value, size) in [(sector, 8), (UInt64(sectors), 4), (UInt64(flags), 4)] {
                    for index in 0..<size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
                }
            }
            return bytes
        }

        /// `total` bytes cut into `count` pieces at cut points taken from the input.
        private static func cut(_ total: Int, into count: Int, _ input: inout FuzzInput) -> [Int] {
            var cuts = (1..<count).map { _ in Int(input.byte()) * total / 256 }
            cuts.sort()
            var pieces: [Int] = []
            var previous = 0
            for cut in cuts + [total] {
                pieces.append(cut - previous)
                previous = cut
            }
            return pieces
        }
    }
}
