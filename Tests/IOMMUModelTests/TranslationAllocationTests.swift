#if canImport(Glibc)
import Glibc
#endif
import IOMMUModel
import Testing
import VhostTestSupport

/// The translation the data path uses per request (page-table walk, IOTLB fallback, last-hit
/// cache) allocates nothing, checked with the allocation counter: every traced round clean on the
/// measuring thread. Opt-in like the other allocation checks (`make test` runs it alone):
///
///     VHOST_USER_ALLOCATION_LOG=$(mktemp) LD_PRELOAD=$(swift build --show-bin-path)/libVhostAllocationCounter.so \
///         swift test --skip-build --filter TranslationAllocationTests
@Suite(.enabled(if: AllocationCounter.isRequested))
struct TranslationAllocationTests {
    @Test func mirrorTranslationAndCacheAllocateNothing() throws {
        let counter = try AllocationCounter()
        var mirror = IOPageTableMirror()
        // 4 KiB pages the table holds, a 2 MiB leaf, and an unaligned entry only the IOTLB holds.
        for page in 0..<256 as Range<UInt64> {
            try mirror.update(iova: 0x10_0000 + page * 0x2000, size: 0x1000, userAddress: 0x7f00_0000_0000 + page * 0x1000,
                              permission: .readWrite)
        }
        try mirror.update(iova: 0x4000_0000, size: 2 << 20, userAddress: 0x7f10_0000_0000, permission: .read)
        try mirror.update(iova: 0x8000_0100, size: 0x300, userAddress: 0x7f20_0000_0100, permission: .write)
        let mirrorSnapshot = mirror
        var cache = IOPageTableMirrorCache()
        let segments = UnsafeMutableBufferPointer<IOTLBSegment>.allocate(capacity: 8)
        defer { segments.deallocate() }
        var translated = 0
        let rounds = try counter.rounds(prepare: {}, measure: {
            // A counted loop: iterating a Range<UInt64> allocates in debug builds (unspecialized
            // IndexingIterator), which would hide what the translation itself does.
            var page: UInt64 = 0
            while page < 256 {
                let iova = 0x10_0000 + page * 0x2000
                page += 1
                if case .translated = mirrorSnapshot.translate(iova: iova, length: 4096, access: .write, into: segments) { translated += 1 }
                if case .translated = cache.translate(mirrorSnapshot, iova: iova + 16, length: 64, access: .read, into: segments) { translated += 1 }
            }
            if case .translated = cache.translate(mirrorSnapshot, iova: 0x4000_1000, length: 8192, access: .read, into: segments) { translated += 1 }
            if case .translated = mirrorSnapshot.translate(iova: 0x8000_0200, length: 16, access: .write, into: segments) { translated += 1 }
            if case .permissionFault = mirrorSnapshot.translate(iova: 0x4000_0000, length: 16, access: .write, into: segments) { translated += 1 }
            if case .miss = mirrorSnapshot.translate(iova: 0x9000_0000, length: 16, access: .read, into: segments) { translated += 1 }
        }, settle: {})
        #expect(translated == 4 * (512 + 4))
        counter.record("TranslationAllocationTests", rounds)
        let clean = rounds.allSatisfy { $0.isClean }
        #expect(clean, "the measured thread's allocator calls per traced round: \(rounds)")
    }
}
