import CZlib
import CZstd

/// One-shot decompression of a compressed block into a buffer of known size, for formats
/// (qcow2's compressed clusters) whose compressed bytes may be followed by unrelated bytes: the
/// output buffer full is success, whatever follows the stream.
public enum Decompression {
    /// Raw deflate (no zlib or gzip header) with a window of 2^`windowBits` bytes (qcow2: 12).
    /// True when `destination` was filled completely.
    public static func inflateRaw(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer,
                                  windowBits: Int32 = 12) -> Bool {
        guard let input = source.baseAddress, let output = destination.baseAddress,
              source.count <= Int(UInt32.max), destination.count <= Int(UInt32.max) else { return false }
        var stream = z_stream()
        // inflateInit2 is a macro: its function takes the library's version and the stream size.
        guard inflateInit2_(&stream, -windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            return false
        }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: input.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(source.count)
        stream.next_out = output.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = UInt32(destination.count)
        let result = inflate(&stream, Z_FINISH)
        // The output full is what counts; the stream may end exactly there or need more room.
        guard result == Z_STREAM_END || result == Z_BUF_ERROR || result == Z_OK else { return false }
        return stream.avail_out == 0
    }

    /// Zstandard frames, streamed until `destination` is full. True when it was filled.
    public static func zstd(_ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        guard let context = ZSTD_createDCtx() else { return false }
        defer { ZSTD_freeDCtx(context) }
        var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
        var output = ZSTD_outBuffer(dst: destination.baseAddress, size: destination.count, pos: 0)
        while output.pos < output.size {
            let before = (input.pos, output.pos)
            let result = ZSTD_decompressStream(context, &output, &input)
            if ZSTD_isError(result) != 0 { return false }
            // No progress: the input ended before the output was full.
            if before == (input.pos, output.pos) { return false }
        }
        return true
    }
}
