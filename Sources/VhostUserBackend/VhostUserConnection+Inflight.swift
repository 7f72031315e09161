#if canImport(Glibc)
import Glibc
#endif
import IOMMUModel
import VhostSystem
import VhostUserProtocol
import VirtioCore
import VirtioSpec

extension VhostUserConnection {
    /// Offsets the export file offers (a sparse memfd: pages cost nothing until touched).
    static let exportWindowBytes: UInt64 = 1 << 30

    /// GET_INFLIGHT_FD: allocates the area for `numQueues` queues in this connection's export
    /// file, at an offset from the IOMMU model's cookie table, and answers with that cookie as
    /// mmap_offset and the file's descriptor. Each region holds the largest ring the device
    /// accepts (or `queueSize`, if the front end asks for more): the front end's `queueSize` is
    /// its queue-size property, and the driver may set another ring size (`InflightArea`). The
    /// area starts zeroed (version 0): each queue formats its region when its ring first
    /// starts, touching only the states its ring uses. The previous area, which the front end
    /// asks again only after it dropped it (QEMU: on a device reset), is freed.
    func getInflightFD(_ request: InflightDescription) throws(BackendError) -> [UInt8] {
        let queues = Int(request.numQueues)
        let asked = Int(request.queueSize)
        guard queues >= 1, queues <= vrings.count else {
            throw .invalidValue(request: .getInflightFd, reason: "num_queues \(queues) is not 1 to \(vrings.count)")
        }
        guard asked >= 1, asked <= SplitRing.maximumQueueSize else {
            throw .invalidValue(request: .getInflightFd, reason: "queue_size \(asked) is not 1 to \(SplitRing.maximumQueueSize)")
        }
        releaseInflightArea()
        let entries = max(asked, device.maximumQueueSize)
        let regionBytes = SplitInflightRegion.byteCount(queueSize: entries)
        let bytes = UInt64(queues * regionBytes)
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
        inflightArea = InflightArea(mapping: mapping, mmapOffset: cookie.offset, queueCount: queues,
                                    regionBytes: regionBytes, exportCookie: cookie)
        pendingReplyDescriptor = file.rawValue
        logger.info("inflight area exported", metadata: [
            "bytes": "\(bytes)", "mmap_offset": "\(cookie.offset)", "queues": "\(queues)", "queue_size": "\(asked)",
            "region_entries": "\(entries)"])
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
    /// the offset is page-aligned, the area lies inside the file, and the file is a memfd
    /// sealed against shrinking (so the mapping cannot lose pages). The regions are the
    /// area's equal shares, as GET_INFLIGHT_FD laid them out (the front end repeats its own
    /// `queueSize`, not the regions' size); their contents are checked when each ring starts
    /// (`SplitInflightRegion.recover`).
    func setInflightFD(_ request: InflightDescription, descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        guard let descriptor = descriptors.first else {
            throw .invalidValue(request: .setInflightFd, reason: "no file descriptor attached")
        }
        let queues = Int(request.numQueues)
        guard queues >= 1, queues <= vrings.count else {
            throw .invalidValue(request: .setInflightFd, reason: "num_queues \(queues) is not 1 to \(vrings.count)")
        }
        guard let regionBytes = InflightArea.regionBytes(areaBytes: request.mmapSize, queueCount: queues) else {
            throw .invalidValue(request: .setInflightFd, reason: "mmap_size \(request.mmapSize) has no room for \(queues) queue regions")
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
            let mapping = try MemoryMapping(descriptor: descriptor, offset: request.mmapOffset,
                                            length: UInt64(queues * regionBytes))
            // Our own area coming back (QEMU sends GET, then SET with what it got) stays ours
            // to free; any other area replaces ours, which is then freed.
            var cookie: MmapCookie?
            if let current = inflightArea?.exportCookie, current.offset == request.mmapOffset, let exportFile,
               try descriptor.refersToSameFile(as: exportFile) {
                cookie = current
            } else {
                releaseInflightArea()
            }
            inflightArea = InflightArea(mapping: mapping, mmapOffset: request.mmapOffset, queueCount: queues,
                                        regionBytes: regionBytes, exportCookie: cookie)
            logger.info("inflight area received", metadata: [
                "bytes": "\(request.mmapSize)", "mmap_offset": "\(request.mmapOffset)", "queues": "\(queues)",
                "region_bytes": "\(regionBytes)"])
        } catch {
            throw .invalidValue(request: .setInflightFd, reason: "\(error)")
        }
    }

    /// Forgets the inflight area (a device reset, or a new area replacing it). When it lives in
    /// our export file its pages are freed and its cookie revoked; its offsets are reused only
    /// once no ring runs, since a running ring may still hold the old mapping.
    func releaseInflightArea() {
        defer { inflightArea = nil }
        guard let cookie = inflightArea?.exportCookie, let exportFile, var table = exportCookies else { return }
        do throws(MmapCookieError) {
            try table.revoke(cookie)
            try? MemFD.discard(exportFile, offset: cookie.offset, length: cookie.length)
            if !vrings.contains(where: \.started) { try table.endQuarantine(cookie) }
        } catch {
            logger.warning("inflight area export not found", metadata: ["error": "\(error)", "cookie": "\(cookie)"])
        }
        exportCookies = table
    }
}
