#if canImport(Glibc)
import Glibc
#endif
import IOMMUModel
import VhostSystem
import VhostUserProtocol
import VirtioCore

extension VhostUserConnection {
    /// Offsets the export file offers (a sparse memfd: pages cost nothing until touched).
    static let exportWindowBytes: UInt64 = 1 << 30

    /// GET_INFLIGHT_FD: allocates the area for `numQueues` queues of `queueSize` entries in
    /// this connection's export file, at an offset from the IOMMU model's cookie table, and
    /// answers with that cookie as mmap_offset and the file's descriptor. The area starts
    /// zeroed (version 0): each queue formats its region when its ring first starts.
    func getInflightFD(_ request: InflightDescription) throws(BackendError) -> [UInt8] {
        let queues = Int(request.numQueues)
        let size = Int(request.queueSize)
        guard queues >= 1, queues <= vrings.count else {
            throw .invalidValue(request: .getInflightFd, reason: "num_queues \(queues) is not 1 to \(vrings.count)")
        }
        guard size >= 1, size <= device.maximumQueueSize else {
            throw .invalidValue(request: .getInflightFd, reason: "queue_size \(size) is not 1 to \(device.maximumQueueSize)")
        }
        let bytes = UInt64(InflightArea.byteCount(queueCount: queues, queueSize: size))
        let file = try exportFileCreatingIfNeeded()
        exportCount += 1
        let cookie: MmapCookie
        do throws(MmapCookieError) {
            var table: MmapCookieTable
            if let existing = exportCookies {
                table = existing
            } else {
                table = try MmapCookieTable(pageSize: 4096, window: 0...(Self.exportWindowBytes - 1))
            }
            cookie = try table.export(ExportedObjectID(rawValue: exportCount), ExportAttributes(size: bytes))
            exportCookies = table
        } catch {
            throw .invalidValue(request: .getInflightFd, reason: "no room for \(bytes) bytes in the export file: \(error)")
        }
        let mapping: MemoryMapping
        do throws(SystemError) {
            mapping = try MemoryMapping(descriptor: file, offset: cookie.offset, length: bytes)
        } catch {
            throw .invalidValue(request: .getInflightFd, reason: "\(error)")
        }
        inflightArea = InflightArea(mapping: mapping, mmapOffset: cookie.offset, queueCount: queues, queueSize: size)
        pendingReplyDescriptor = file.rawValue
        logger.info("inflight area exported", metadata: [
            "bytes": "\(bytes)", "mmap_offset": "\(cookie.offset)", "queues": "\(queues)", "queue_size": "\(size)"])
        return Reply.inflight(InflightDescription(mmapSize: bytes, mmapOffset: cookie.offset, numQueues: request.numQueues,
                                                  queueSize: request.queueSize)).encoded().bytes
    }

    /// The connection's export file: a sparse memfd of `exportWindowBytes`, sealed so that
    /// neither side can change its size (a shrink would make our mappings fault).
    private func exportFileCreatingIfNeeded() throws(BackendError) -> OwnedFileDescriptor {
        if let exportFile { return exportFile }
        do throws(SystemError) {
            let created = try MemFD.create(name: "vhost-user-exports", size: Self.exportWindowBytes, allowSealing: true)
            try MemFD.sealSize(created)
            exportFile = created
            return created
        } catch {
            throw .invalidValue(request: .getInflightFd, reason: "cannot create the export file: \(error)")
        }
    }

    /// SET_INFLIGHT_FD: maps the area the front end hands (back) to us, after checking it:
    /// the size covers every queue's region, the offset is page-aligned and inside the file,
    /// and the file is a memfd sealed against shrinking (so the mapping cannot lose pages).
    /// The regions' contents are checked when each ring starts (`SplitInflightRegion.recover`).
    func setInflightFD(_ request: InflightDescription, descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        guard let descriptor = descriptors.first else {
            throw .invalidValue(request: .setInflightFd, reason: "no file descriptor attached")
        }
        let queues = Int(request.numQueues)
        let size = Int(request.queueSize)
        guard queues >= 1, queues <= vrings.count, size >= 1, size <= device.maximumQueueSize else {
            throw .invalidValue(request: .setInflightFd, reason: "num_queues \(queues) / queue_size \(size) out of range")
        }
        let needed = UInt64(InflightArea.byteCount(queueCount: queues, queueSize: size))
        guard request.mmapSize >= needed else {
            throw .invalidValue(request: .setInflightFd, reason: "mmap_size \(request.mmapSize) < \(needed) needed")
        }
        guard request.mmapOffset % UInt64(MemoryMapping.pageSize) == 0 else {
            throw .invalidValue(request: .setInflightFd, reason: "mmap_offset \(request.mmapOffset) is not page-aligned")
        }
        guard MemFD.cannotShrink(descriptor) else {
            throw .invalidValue(request: .setInflightFd, reason: "the area is not a memfd sealed against shrinking")
        }
        do throws(SystemError) {
            let fileSize = try descriptor.size()
            let (end, overflow) = request.mmapOffset.addingReportingOverflow(request.mmapSize)
            guard !overflow, end <= fileSize else {
                throw SystemError(call: "area \(request.mmapOffset)+\(request.mmapSize) past the file's \(fileSize) bytes", errno: EINVAL)
            }
            let mapping = try MemoryMapping(descriptor: descriptor, offset: request.mmapOffset, length: needed)
            inflightArea = InflightArea(mapping: mapping, mmapOffset: request.mmapOffset,
                                        queueCount: queues, queueSize: size)
            logger.info("inflight area received", metadata: ["bytes": "\(request.mmapSize)", "mmap_offset": "\(request.mmapOffset)"])
        } catch {
            throw .invalidValue(request: .setInflightFd, reason: "\(error)")
        }
    }
}
