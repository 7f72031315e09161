extension GuestMemory {
    /// Host pointer to `length` bytes at guest-physical `address`, or nil unless the whole range
    /// lies inside one region. `length` must be positive. Valid while this table is alive.
    public func pointer(_ address: GuestPhysicalAddress, length: Int) -> UnsafeMutableRawPointer? {
        Self.pointer(address.rawValue, length: length, in: physicalSpans)
    }

    /// Host pointer to `length` bytes at front-end virtual `address` (ring addresses), or nil
    /// unless the whole range lies inside one region. `length` must be positive.
    public func pointer(_ address: FrontEndVirtualAddress, length: Int) -> UnsafeMutableRawPointer? {
        Self.pointer(address.rawValue, length: length, in: virtualSpans)
    }

    /// Translates `length` bytes at guest-physical `address` into host segments, one per region
    /// the range crosses; the regions must be adjacent in guest-physical space (no gap). Writes
    /// the segments to the front of `buffer` and allocates nothing. `length` 0 translates to no
    /// segment; a negative length is `.notMapped`.
    public func segments(_ address: GuestPhysicalAddress, length: Int,
                         into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        Self.segments(address.rawValue, length: length, in: physicalSpans, into: buffer)
    }

    /// The same as `segments(_:length:into:)` for a front-end virtual address.
    public func segments(_ address: FrontEndVirtualAddress, length: Int,
                         into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        Self.segments(address.rawValue, length: length, in: virtualSpans, into: buffer)
    }

    /// The guest-physical address of the byte at host `pointer`, and how many bytes from it on
    /// lie in the same region; nil when the pointer is in no region of this table. (Dirty
    /// logging: the device's writes are known by host address, the log is by guest page.)
    public func guestPhysicalAddress(ofHost pointer: UnsafeRawPointer) -> (address: GuestPhysicalAddress, bytesInRegion: UInt64)? {
        let host = UInt64(UInt(bitPattern: pointer))
        guard let index = hostSpans.spanIndex(containing: host) else { return nil }
        let span = hostSpans[index]
        let region = regions[hostSpanRegions[index]]
        return (GuestPhysicalAddress(rawValue: region.guestPhysicalStart.rawValue + (host - span.start)), span.end - host)
    }

    @inline(__always)
    static func pointer(_ address: UInt64, length: Int, in spans: [AddressSpan]) -> UnsafeMutableRawPointer? {
        guard length > 0, let byteCount = UInt64(exactly: length) else { return nil }
        let (end, overflow) = address.addingReportingOverflow(byteCount)
        guard !overflow, let index = spans.spanIndex(containing: address) else { return nil }
        let span = spans[index]
        guard end <= span.end else { return nil }
        // SAFETY: start <= address < end <= span.end, so the offset is inside the region's mapping
        // and the sum cannot overflow (the mapping exists at hostAddress..<hostAddress+size).
        return UnsafeMutableRawPointer(bitPattern: span.hostAddress + UInt(address - span.start))
    }

    static func segments(_ address: UInt64, length: Int, in spans: [AddressSpan],
                         into buffer: UnsafeMutableBufferPointer<BufferSegment>) -> SegmentTranslation {
        guard let byteCount = UInt64(exactly: length) else { return .notMapped }
        if byteCount == 0 { return .translated(segmentCount: 0) }
        guard !address.addingReportingOverflow(byteCount).overflow else { return .addressOverflow }
        guard var index = spans.spanIndex(containing: address) else { return .notMapped }
        var cursor = address
        var remaining = byteCount
        var count = 0
        while true {
            let span = spans[index]
            // cursor is inside span: start <= cursor < end.
            let piece = min(remaining, span.end - cursor)
            guard count < buffer.count else { return .needsMoreSegments }
            // SAFETY: as in `pointer`, the offset lies inside the region's mapping, which is never
            // at address 0. piece <= byteCount <= Int.max, so Int(piece) cannot trap.
            guard let pointer = UnsafeMutableRawPointer(bitPattern: span.hostAddress + UInt(cursor - span.start)) else {
                return .notMapped
            }
            // SAFETY: count < buffer.count, and BufferSegment is trivial, so assigning into
            // uninitialized or previously used storage is a plain store.
            buffer[count] = BufferSegment(pointer: pointer, length: Int(piece))
            count += 1
            remaining -= piece
            if remaining == 0 { return .translated(segmentCount: count) }
            // The rest must continue in the next region, starting exactly where this one ends.
            cursor = span.end
            index += 1
            guard index < spans.count, spans[index].start == cursor else { return .notMapped }
        }
    }
}
