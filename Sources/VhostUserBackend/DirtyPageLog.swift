#if canImport(Glibc)
import Glibc
#endif
import VhostSystem
import VhostUserProtocol
import VirtioCore

/// The dirty-page log a front end shares for live migration (VHOST_F_LOG_ALL with the LOG_SHMFD
/// protocol feature, SET_LOG_BASE): a bitmap in the front end's memfd with one bit per 4 KiB
/// guest-physical page, bit `page % 8` of byte `page / 8`. The front end takes the bits with
/// atomic exchanges and copies the pages they name to the destination again; so a bit is set
/// after the write it stands for (a release fence, then an atomic OR), never before.
///
/// Shared by every worker of the connection; a SET_LOG_BASE that resizes the log replaces it
/// whole, and the old mapping goes when the last worker lets go of it.
final class DirtyPageLog: @unchecked Sendable {
    // SAFETY (Sendable): immutable after init; the bitmap is shared memory written only by atomic ORs.

    /// The log's page size (VHOST_LOG_PAGE), whatever the host's page size.
    static let pageSize: UInt64 = 0x1000
    /// The largest bitmap accepted: 1 GiB of bits logs 32 TiB of guest memory, above
    /// `ConnectionLimits.defaultMappedBytes`.
    static let maximumByteCount: UInt64 = 1 << 30

    private let mapping: MemoryMapping
    private let bitmap: UnsafeMutableRawPointer
    /// Bytes of bitmap.
    let byteCount: UInt64

    /// Maps the log SET_LOG_BASE describes in `descriptor`.
    /// - Throws: `BackendError.invalidValue` for an empty or oversized log, one past the end of
    ///   the file, or a mapping the kernel refuses.
    init(descriptor: OwnedFileDescriptor, description: LogDescription) throws(BackendError) {
        let size = description.mmapSize
        let offset = description.mmapOffset
        guard size > 0, size <= Self.maximumByteCount else {
            throw .invalidValue(request: .setLogBase, reason: "a log of \(size) bytes (at most \(Self.maximumByteCount))")
        }
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard !overflow else {
            throw .invalidValue(request: .setLogBase, reason: "offset \(offset) + size \(size) overflows")
        }
        let fileSize: UInt64?
        do throws(SystemError) {
            fileSize = try descriptor.regularFileSize()
        } catch {
            throw .invalidValue(request: .setLogBase, reason: "cannot read the log file's size: \(error)")
        }
        // Touching a page past the end of the file would raise SIGBUS.
        if let fileSize, fileSize < end {
            throw .invalidValue(request: .setLogBase, reason: "the log ends past its file (\(end) > \(fileSize) bytes)")
        }
        let remainder = offset % UInt64(MemoryMapping.pageSize)
        do throws(SystemError) {
            mapping = try MemoryMapping(descriptor: descriptor, offset: offset - remainder, length: size + remainder)
        } catch {
            throw .invalidValue(request: .setLogBase, reason: "cannot map the log: \(error)")
        }
        // SAFETY: remainder < the page size <= the mapping's length.
        bitmap = mapping.base + Int(remainder)
        byteCount = size
    }

    /// Guest-physical pages the bitmap covers.
    var pageCount: UInt64 { byteCount * 8 }

    /// Orders the device's writes before the bits set next: once per batch of `mark` calls.
    @inline(__always)
    func prepareToMark() {
        SharedMemoryOrdering.releaseFence()
    }

    /// Sets the bits of every page `[address, address + length)` touches. Pages past the log
    /// are not marked. - Returns: false if some were (a log smaller than guest memory).
    @discardableResult
    func mark(guestPhysical address: UInt64, length: UInt64) -> Bool {
        guard length > 0 else { return true }
        let first = address / Self.pageSize
        let (end, overflow) = address.addingReportingOverflow(length - 1)
        let last = overflow ? UInt64.max / Self.pageSize : end / Self.pageSize
        guard first < pageCount else { return false }
        let lastInLog = min(last, pageCount - 1)
        var page = first
        while page <= lastInLog {
            // The bits of this byte from `page` up to `lastInLog`.
            let byte = page / 8
            let low = page % 8
            let high = min(7, lastInLog - byte * 8)
            let bits = UInt8(truncatingIfNeeded: (0xFF << low) & (0xFF >> (7 - high)))
            // SAFETY: byte < byteCount (page < pageCount), inside the mapping.
            SharedMemoryOrdering.orRelaxed(bits, bitmap + Int(byte))
            page = byte * 8 + 8
        }
        return lastInLog == last
    }

    /// Marks `length` bytes the device wrote at host `pointer`, which lies in one region of
    /// `memory` (a segment of a walked chain). - Returns: false if it is not (nothing marked)
    /// or part of it lies past the log.
    @discardableResult
    func mark(host pointer: UnsafeRawPointer, length: Int, in memory: GuestMemory) -> Bool {
        guard let (address, bytesInRegion) = memory.guestPhysicalAddress(ofHost: pointer),
              let byteCount = UInt64(exactly: length), byteCount <= bytesInRegion else {
            return false
        }
        return mark(guestPhysical: address.rawValue, length: byteCount)
    }
}
