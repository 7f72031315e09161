extension DescriptorChain {
    /// Calls `body` for each host piece of the byte range `offset..<offset+length` of `side`,
    /// in order. Returns false, without calling `body`, if the range is not inside the side;
    /// false, after the pieces before it, at the first inaccessible segment.
    @inline(__always)
    func forEachPiece(_ side: Side, offset: Int, length: Int,
                      _ body: (UnsafeMutableRawPointer, Int) -> Bool) -> Bool {
        guard offset >= 0, length >= 0 else { return false }
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= byteCount(side) else { return false }
        if length == 0 { return true }
        var skip = offset
        var remaining = length
        let view = segments(side)
        for position in 0..<view.count {
            let segment = view.segment(at: position)
            if skip >= segment.length {
                skip -= segment.length
                continue
            }
            guard segment.isAccessible else { return false }
            let piece = min(segment.length - skip, remaining)
            // SAFETY: skip < segment.length and skip + piece <= segment.length, so the piece lies
            // inside the segment, which the walk bounds-checked against the region.
            guard body(segment.pointer + skip, piece) else { return true }
            remaining -= piece
            skip = 0
            if remaining == 0 { break }
        }
        return true
    }

    /// Copies up to `destination.count` device-readable bytes starting at byte `offset` of the
    /// readable side into `destination` (for example a request header, which may be split
    /// across descriptors anywhere). Returns the number of bytes copied: fewer than asked when
    /// the readable side is shorter or an inaccessible segment comes first.
    public func copyReadableBytes(into destination: UnsafeMutableRawBufferPointer, from offset: Int = 0) -> Int {
        guard offset >= 0, offset <= readableByteCount, let base = destination.baseAddress else { return 0 }
        let length = min(destination.count, readableByteCount - offset)
        var copied = 0
        _ = forEachPiece(.readable, offset: offset, length: length) { pointer, count in
            // SAFETY: copied + count <= length <= destination.count; the source piece is inside a
            // checked segment. The guest may change it concurrently: we copy whatever is there.
            (base + copied).copyMemory(from: pointer, byteCount: count)
            copied += count
            return true
        }
        return copied
    }

    /// Copies `source` into the device-writable side starting at byte `offset`. Returns the
    /// number of bytes copied: fewer than `source.count` when the writable side is shorter or an
    /// inaccessible segment comes first.
    public func copyToWritableBytes(from source: UnsafeRawBufferPointer, at offset: Int = 0) -> Int {
        guard offset >= 0, offset <= writableByteCount, let base = source.baseAddress else { return 0 }
        let length = min(source.count, writableByteCount - offset)
        var copied = 0
        _ = forEachPiece(.writable, offset: offset, length: length) { pointer, count in
            // SAFETY: copied + count <= length <= source.count; the destination piece is inside a
            // checked, writable segment.
            pointer.copyMemory(from: base + copied, byteCount: count)
            copied += count
            return true
        }
        return copied
    }

    /// The last byte of the device-writable side (virtio-blk's status byte), or nil when the
    /// chain has no writable bytes or that byte is inaccessible.
    public var lastWritableByte: UnsafeMutableRawPointer? {
        let view = writable
        guard view.count > 0 else { return nil }
        let last = view.segment(at: view.count - 1)
        guard last.isAccessible else { return nil }
        // SAFETY: segments have length >= 1, so pointer + length - 1 is the segment's last byte.
        return last.pointer + (last.length - 1)
    }
}
