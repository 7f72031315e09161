#if canImport(Glibc)
import Glibc
#endif
import CVhostBridge

/// Storage operations on an image's descriptor. The range operations answer 0 or an errno
/// instead of throwing: they run on the data path, where the caller turns a failure into the
/// device's error status.
extension OwnedFileDescriptor {
    /// A block device's size in bytes (ioctl BLKGETSIZE64).
    public func blockDeviceSize() throws(SystemError) -> UInt64 {
        var bytes: UInt64 = 0
        guard cvb_block_device_size(rawValue, &bytes) == 0 else {
            throw SystemError(call: "ioctl(BLKGETSIZE64)", errno: errno)
        }
        return bytes
    }

    /// A block device's logical sector size (ioctl BLKSSZGET).
    public func logicalSectorSize() throws(SystemError) -> Int {
        var size: Int32 = 0
        guard cvb_block_device_logical_sector_size(rawValue, &size) == 0 else {
            throw SystemError(call: "ioctl(BLKSSZGET)", errno: errno)
        }
        return Int(size)
    }

    /// O_DIRECT's alignment for this file as the kernel states it (statx STATX_DIOALIGN):
    /// buffer addresses (`memory`) and file offsets and lengths (`offset`). Nil when the kernel
    /// or the file system does not say; zeroes when the file does not support O_DIRECT.
    public func directIOAlignment() throws(SystemError) -> (memory: Int, offset: Int)? {
        var memory: UInt32 = 0
        var offset: UInt32 = 0
        switch cvb_direct_io_alignment(rawValue, &memory, &offset) {
        case 1: return (Int(memory), Int(offset))
        case 0: return nil
        default: throw SystemError(call: "statx(STATX_DIOALIGN)", errno: errno)
        }
    }

    /// O_DIRECT's alignment for this file: what the kernel states (statx), else a block
    /// device's logical sector size, else 4096 (which every file system accepts). Nil when the
    /// kernel says the file does no direct I/O.
    public func probedDirectIOAlignment(isBlockDevice: Bool) -> (memory: Int, offset: Int)? {
        if let stated = try? directIOAlignment() {
            guard stated.memory > 0, stated.offset > 0 else { return nil }
            return stated
        }
        if isBlockDevice, let sector = try? logicalSectorSize(), sector > 0 { return (sector, sector) }
        return (4096, 4096)
    }

    /// preadv2 / pwritev2 with RWF_NOWAIT: the bytes moved if that needs no waiting (page-cache
    /// hits), else a negative errno (-EAGAIN when it would block).
    public func transferWithoutWaiting(_ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64, write: Bool) -> Int32 {
        Self.transferWithoutWaiting(rawValue, vectors, count: count, offset: offset, write: write)
    }

    /// As the method, on a descriptor some owner keeps open (a file of a qcow2 chain).
    public static func transferWithoutWaiting(_ descriptor: Int32, _ vectors: UnsafePointer<iovec>, count: Int, offset: UInt64,
                                              write: Bool) -> Int32 {
        let result = cvb_transfer_nowait(descriptor, vectors, Int32(truncatingIfNeeded: count), offset, write ? 1 : 0)
        return result >= 0 ? Int32(clamping: result) : -errno
    }

    /// A regular file: frees the blocks of the range, which then reads as zeroes; the size stays
    /// (fallocate PUNCH_HOLE | KEEP_SIZE).
    public func punchHole(offset: UInt64, length: UInt64) -> Int32 {
        cvb_fallocate(rawValue, CVB_FALLOC_FL_PUNCH_HOLE | CVB_FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : errno
    }

    /// A regular file: the range reads as zeroes, its blocks stay allocated (fallocate
    /// ZERO_RANGE | KEEP_SIZE).
    public func zeroRange(offset: UInt64, length: UInt64) -> Int32 {
        cvb_fallocate(rawValue, CVB_FALLOC_FL_ZERO_RANGE | CVB_FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : errno
    }

    /// A block device: discards the range (ioctl BLKDISCARD).
    public func discardBlocks(offset: UInt64, length: UInt64) -> Int32 {
        cvb_block_device_discard(rawValue, offset, length) == 0 ? 0 : errno
    }

    /// A block device: writes zeroes over the range (ioctl BLKZEROOUT).
    public func zeroOutBlocks(offset: UInt64, length: UInt64) -> Int32 {
        cvb_block_device_zeroout(rawValue, offset, length) == 0 ? 0 : errno
    }
}
