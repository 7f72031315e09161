import VhostSystem

/// Serialises read-modify-writes of aligned blocks a write covers only in part: under O_DIRECT
/// on a file whose alignment exceeds the 512-byte sector (a 4 KiB-sector disk), a 2 KiB write
/// reads its 4 KiB block, changes half and writes the block back. Two queues doing that to the
/// two halves of one block at once would each write back the other's old half, and one write
/// would be lost although the guest sent them to different sectors. Each read-modify-write
/// holds the lock of its first and last aligned block (the partial ones; the blocks between are
/// wholly its own), as QEMU serialises such requests.
///
/// Striped: a block's lock is one of `stripeCount` by its index, so the table is fixed and
/// small. Only the bounce path takes these locks: aligned requests never do.
final class PartialBlockLocks: Sendable {
    static let stripeCount = 64

    /// Each stripe counts the read-modify-writes done under it. (A count, not `Void`: an empty
    /// value shares its address with the lock's own field, which ThreadSanitizer then reports
    /// as a race.)
    private let stripes: [Locked<UInt64>]

    init() {
        stripes = (0..<Self.stripeCount).map { _ in Locked(0) }
    }

    /// Runs `body` holding the locks of the aligned blocks that contain `first` and `last`
    /// (file offsets), taken in stripe order so two callers cannot deadlock.
    func withBlocks<Result>(first: UInt64, last: UInt64, alignment: Int, _ body: () -> Result) -> Result {
        let count = UInt64(Self.stripeCount)
        let one = Int((first / UInt64(max(alignment, 1))) % count)
        let other = Int((last / UInt64(max(alignment, 1))) % count)
        if one == other {
            return stripes[one].withLock { count in
                count &+= 1
                return body()
            }
        }
        return stripes[min(one, other)].withLock { _ in
            stripes[max(one, other)].withLock { count in
                count &+= 1
                return body()
            }
        }
    }
}
