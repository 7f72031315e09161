#if canImport(Glibc)
import Glibc
#endif

extension DescriptorChainFuzz {
    /// What the body makes once per process and reuses for every input.
    final class Workspace {
        /// Room for the readable bytes the body copies out of one chain.
        static let copyByteCount = 4096
        /// More iovecs than any chain here has segments (twice the longest chain, 1024).
        static let vectorCount = 4096

        let guest = FuzzGuestMemory()
        /// Where `copyReadableBytes` copies to, and what the guest's view says it must copy.
        let copied = UnsafeMutableRawBufferPointer.allocate(byteCount: copyByteCount, alignment: 16)
        let expected = UnsafeMutableRawBufferPointer.allocate(byteCount: copyByteCount, alignment: 16)
        let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: vectorCount)

        deinit {
            copied.deallocate()
            expected.deallocate()
            vectors.deallocate()
        }
    }
}
