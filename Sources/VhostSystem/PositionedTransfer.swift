#if canImport(Glibc)
import Glibc
#endif

/// preadv / pwritev carried to completion: short transfers continued, EINTR retried, at most
/// IOV_MAX iovecs per call. The one loop the raw image and the qcow2 module's files share.
public enum PositionedTransfer {
    /// IOV_MAX: the most iovecs preadv / pwritev accept in one call (Linux UIO_MAXIOV,
    /// include/uapi/linux/uio.h; glibc's IOV_MAX macro does not import into Swift).
    public static let maximumVectorsPerCall = 1024

    /// What a read that reaches the end of the file does with the rest.
    public enum PastEnd {
        /// Fails with EIO (a raw disk ends where its file does).
        case fail
        /// Fills the rest with zeroes (a sparse image file's tail).
        case zeroFill
    }

    /// Moves `byteCount` bytes between `count` iovecs and `descriptor` at `offset`. The iovecs are
    /// consumed (advanced) as the transfer goes. Returns 0 or an errno.
    public static func run(_ descriptor: Int32, _ vectors: UnsafeMutablePointer<iovec>, count: Int, byteCount: Int,
                           offset: UInt64, write: Bool, pastEnd: PastEnd) -> Int32 {
        var done = 0
        var first = 0
        var position = offset
        while done < byteCount {
            let batch = Int32(min(count - first, maximumVectorsPerCall))
            let result = write
                ? pwritev(descriptor, vectors + first, batch, off_t(truncatingIfNeeded: position))
                : preadv(descriptor, vectors + first, batch, off_t(truncatingIfNeeded: position))
            if result < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if result == 0 {
                guard !write, pastEnd == .zeroFill else { return EIO }
                for index in first..<count where vectors[index].iov_len > 0 {
                    vectors[index].iov_base?.initializeMemory(as: UInt8.self, repeating: 0, count: vectors[index].iov_len)
                }
                return 0
            }
            done += result
            position += UInt64(result)
            // Skip the iovecs that are complete and trim the partly done one (short transfer).
            var advance = result
            while first < count && advance >= vectors[first].iov_len {
                advance -= vectors[first].iov_len
                first += 1
            }
            if first < count && advance > 0 {
                vectors[first].iov_base = vectors[first].iov_base.map { $0 + advance }
                vectors[first].iov_len -= advance
            }
        }
        return 0
    }
}
