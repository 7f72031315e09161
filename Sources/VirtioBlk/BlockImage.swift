#if canImport(Glibc)
import Glibc
#endif
import Logging
import Qcow2
import StorageIO
import VhostSystem

/// How the image file's bytes become the disk's (`--format`): never guessed from the contents,
/// so a guest that writes an image header into a raw disk gains nothing at the next start.
public enum BlockImageFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The file is the disk, byte for byte.
    case raw
    /// A qcow2 image (versions 2 and 3), with its backing chain.
    case qcow2

    public var description: String { rawValue }
}

/// The disk behind the device: a regular file or a block device, opened once, raw or holding a
/// qcow2 image (`qcow2`, which then maps guest offsets to the file's); or a null disk
/// of a given size that stores nothing (reads leave the guest's buffers as they are, writes are
/// dropped), to measure the request path without I/O, as qemu-storage-daemon's null-co does.
///
/// Every method is safe to call from several queue workers at once (positioned I/O only).
public final class BlockImage: Sendable {
    public static let sectorSize: UInt64 = 512

    public let path: String
    public let descriptor: OwnedFileDescriptor
    public let size: UInt64
    public let readOnly: Bool
    public let isBlockDevice: Bool
    /// A null disk: every request succeeds without touching storage.
    public let isNull: Bool
    /// How the image is cached (`--cache`).
    public let cache: BlockCacheMode
    /// Held by bounced writes that read-modify-write a partly covered aligned block.
    let partialBlockLocks = PartialBlockLocks()
    /// With O_DIRECT: the alignment of buffer addresses (`memory`) and of file offsets and
    /// lengths (`offset`) a transfer needs; requests that miss it go through a bounce buffer.
    public let directAlignment: (memory: Int, offset: Int)?
    /// Fault injection (`--io-delay-us`): every read and write waits this long first, as slow
    /// storage would, so tests can catch requests in flight. 0 in normal use.
    public let ioDelayMicroseconds: UInt32
    /// The qcow2 image in the file (`--format=qcow2`); nil for raw files and the null disk.
    public let qcow2: Qcow2Disk?
    /// A disk beyond the host (NBD): every request goes through its queues.
    public let storage: (any BlockStorage)?

    /// - Parameters:
    ///   - format: how the file's contents are read; never probed.
    ///   - l2CacheBytes: qcow2's L2 table cache (`--l2-cache-size`); nil for QEMU's default.
    public init(path: String, readOnly: Bool, cache: BlockCacheMode = .writeback, format: BlockImageFormat = .raw,
                l2CacheBytes: Int? = nil, ioDelayMicroseconds: UInt32 = 0,
                logger: Logger = Logger(label: "vhost-user-blk.image")) throws(BlockImageError) {
        self.ioDelayMicroseconds = ioDelayMicroseconds
        self.path = path
        self.readOnly = readOnly
        self.cache = cache
        isNull = false
        storage = nil
        do {
            descriptor = try OwnedFileDescriptor.open(path, flags: (readOnly ? O_RDONLY : O_RDWR) | cache.openFlags)
        } catch {
            if cache.bypassesPageCache, error.errno == EINVAL { throw .directIOUnsupported(path: path, cache: cache, error) }
            throw .cannotOpen(path: path, error)
        }
        let fileSize: UInt64
        do {
            isBlockDevice = try descriptor.isBlockDevice()
            if isBlockDevice {
                fileSize = try descriptor.blockDeviceSize()
            } else if try descriptor.isRegularFile() {
                fileSize = try descriptor.size()
            } else {
                throw BlockImageError.notAFileOrBlockDevice(path: path)
            }
        } catch let error as BlockImageError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            throw .notAFileOrBlockDevice(path: path)
        }
        guard fileSize > 0 else { throw .empty(path: path) }
        directAlignment = cache.bypassesPageCache
            ? try Self.probeDirectAlignment(descriptor, path: path, cache: cache, isBlockDevice: isBlockDevice) : nil
        switch format {
        case .raw:
            qcow2 = nil
            size = fileSize
        case .qcow2:
            do {
                let disk = try Qcow2Disk(descriptor: descriptor, path: path, readOnly: readOnly, directAlignment: directAlignment,
                                         backingOpenFlags: cache.openFlags, l2CacheBytes: l2CacheBytes, logger: logger)
                qcow2 = disk
                size = disk.virtualSize
            } catch {
                throw .qcow2(error)
            }
            // The image file's own size is qcow2's business; the virtual size is checked there.
            return
        }
        guard size % Self.sectorSize == 0 else { throw .sizeNotMultipleOfSectorSize(path: path, size: size) }
        if let directAlignment, size % UInt64(directAlignment.offset) != 0 {
            // The last partial block could be neither read nor written with O_DIRECT.
            throw .sizeNotMultipleOfDirectAlignment(path: path, size: size, alignment: directAlignment.offset)
        }
    }

    /// O_DIRECT's alignment (`OwnedFileDescriptor.probedDirectIOAlignment`).
    private static func probeDirectAlignment(_ descriptor: OwnedFileDescriptor, path: String, cache: BlockCacheMode,
                                             isBlockDevice: Bool) throws(BlockImageError) -> (memory: Int, offset: Int) {
        guard let alignment = descriptor.probedDirectIOAlignment(isBlockDevice: isBlockDevice) else {
            throw .directIOUnsupported(path: path, cache: cache, nil)
        }
        return alignment
    }

    /// A null disk of `size` bytes (a positive multiple of 512). Its descriptor is /dev/null,
    /// so the type keeps one owned descriptor whatever the backing.
    public init(nullSize size: UInt64, readOnly: Bool, ioDelayMicroseconds: UInt32 = 0) throws(BlockImageError) {
        self.ioDelayMicroseconds = ioDelayMicroseconds
        path = "null"
        self.readOnly = readOnly
        isNull = true
        isBlockDevice = false
        cache = .writeback
        directAlignment = nil
        qcow2 = nil
        storage = nil
        guard size > 0 else { throw .empty(path: path) }
        guard size % Self.sectorSize == 0 else { throw .sizeNotMultipleOfSectorSize(path: path, size: size) }
        self.size = size
        do {
            descriptor = try OwnedFileDescriptor.open("/dev/null", flags: O_RDWR)
        } catch {
            throw .cannotOpen(path: "/dev/null", error)
        }
    }

    /// A disk served by `storage` (its size, read-only when it or `readOnly` says so). Its
    /// descriptor is /dev/null, as the null disk's.
    public init(storage: any BlockStorage, readOnly: Bool) throws(BlockImageError) {
        path = storage.name
        self.readOnly = readOnly || storage.readOnly
        self.storage = storage
        isNull = false
        isBlockDevice = false
        cache = .writeback
        directAlignment = nil
        qcow2 = nil
        ioDelayMicroseconds = 0
        size = storage.size
        guard size > 0 else { throw .empty(path: path) }
        guard size % Self.sectorSize == 0 else { throw .sizeNotMultipleOfSectorSize(path: path, size: size) }
        do {
            descriptor = try OwnedFileDescriptor.open("/dev/null", flags: O_RDWR)
        } catch {
            throw .cannotOpen(path: "/dev/null", error)
        }
    }

    public var sectorCount: UInt64 { size / Self.sectorSize }

    /// preadv at `offset`, retried until the iovecs are full; a short read past the end of a
    /// regular file (cannot happen within `size`) is reported as EIO.
    @inline(__always)
    public func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, byteCount: Int, offset: UInt64) -> Int32 {
        transfer(vectors, count: count, byteCount: byteCount, offset: offset, write: false)
    }

    @inline(__always)
    public func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int, byteCount: Int, offset: UInt64) -> Int32 {
        transfer(vectors, count: count, byteCount: byteCount, offset: offset, write: true)
    }

    /// Where `length` bytes at disk `offset` are in one file, for the I/O engine: the image
    /// file itself for raw, the run qcow2 maps them to (nil when qcow2 must serve them itself).
    @inline(__always)
    public func directMapping(offset: UInt64, length: Int, forWrite: Bool) -> (descriptor: Int32, offset: UInt64)? {
        guard let qcow2 else { return (descriptor.rawValue, offset) }
        return qcow2.directMapping(offset: offset, length: length, forWrite: forWrite)
    }

    /// fdatasync: data written so far reaches stable storage (nothing with --cache=unsafe).
    /// Returns 0 or an errno.
    public func flush() -> Int32 {
        if isNull || cache.ignoresFlush { return 0 }
        while fdatasync(descriptor.rawValue) != 0 {
            if errno != EINTR { return errno }
        }
        return 0
    }

    /// Deallocates a range (punch hole / BLKDISCARD). Returns 0 or an errno.
    public func discard(offset: UInt64, length: UInt64) -> Int32 {
        if isNull { return 0 }
        if let qcow2 { return qcow2.discard(offset: offset, length: length) }
        return isBlockDevice
            ? descriptor.discardBlocks(offset: offset, length: length)
            : descriptor.punchHole(offset: offset, length: length)
    }

    /// Makes a range read back as zeroes, deallocating it when `unmap` allows. Falls back to writing
    /// zeroes from `zeroes` when the file system supports neither hole punching nor zero ranges.
    public func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool, zeroes: UnsafeRawBufferPointer) -> Int32 {
        if isNull { return 0 }
        if let qcow2 { return qcow2.writeZeroes(offset: offset, length: length, unmap: unmap) }
        if isBlockDevice {
            if descriptor.zeroOutBlocks(offset: offset, length: length) == 0 { return 0 }
        } else {
            if unmap, descriptor.punchHole(offset: offset, length: length) == 0 { return 0 }
            if descriptor.zeroRange(offset: offset, length: length) == 0 { return 0 }
        }
        var position = offset
        var remaining = length
        while remaining > 0 {
            let chunk = Int(min(remaining, UInt64(zeroes.count)))
            let written = pwrite(descriptor.rawValue, zeroes.baseAddress, chunk, off_t(truncatingIfNeeded: position))
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if written == 0 { return EIO }
            position += UInt64(written)
            remaining -= UInt64(written)
        }
        return 0
    }

    private func transfer(_ vectors: UnsafeMutablePointer<iovec>, count: Int, byteCount: Int, offset: UInt64, write: Bool) -> Int32 {
        if ioDelayMicroseconds > 0 { usleep(ioDelayMicroseconds) }
        if isNull { return 0 }
        if let qcow2 {
            return write ? qcow2.write(vectors, count: count, offset: offset, length: byteCount)
                : qcow2.read(vectors, count: count, offset: offset, length: byteCount)
        }
        return PositionedTransfer.run(descriptor.rawValue, vectors, count: count, byteCount: byteCount, offset: offset,
                                      write: write, pastEnd: .fail)
    }
}
