import IOMMUModel
import VhostSystem
import VirtioCore

/// The inflight tracking area (INFLIGHT_SHMFD) as this back end maps it: one region per queue,
/// `regionBytes` each, back to back. The front end keeps the memfd and hands it back after a
/// restart; the mapping lives as long as this object, which every ring using it holds (the
/// descriptor itself is not needed once mapped).
///
/// A region holds as many descriptor states as the largest ring the device accepts, not the
/// queue size the front end names in GET_INFLIGHT_FD: that is QEMU's `queue-size` property,
/// and the driver may set another ring size (QEMU 10.0.13 lets it set up to 1024 whatever the
/// property; SeaBIOS sets 256). A ring uses the first `ring size` states of its region.
final class InflightArea: @unchecked Sendable {  // each queue writes only its own region
    let mapping: MemoryMapping
    let mmapOffset: UInt64
    let queueCount: Int
    /// Bytes per queue region (a multiple of `SplitInflightRegion.alignment`).
    let regionBytes: Int
    /// When the area lives in this connection's export file: its cookie there.
    let exportCookie: MmapCookie?

    /// The region size of an area of `areaBytes` for `queueCount` queues, as this back end lays
    /// it out (equal regions, 64-byte aligned); nil if not even a one-entry region fits.
    static func regionBytes(areaBytes: UInt64, queueCount: Int) -> Int? {
        guard queueCount > 0 else { return nil }
        let share = areaBytes / UInt64(queueCount)
        let aligned = share - share % UInt64(SplitInflightRegion.alignment)
        guard aligned >= UInt64(SplitInflightRegion.byteCount(queueSize: 1)), let bytes = Int(exactly: aligned) else {
            return nil
        }
        return bytes
    }

    init(mapping: MemoryMapping, mmapOffset: UInt64, queueCount: Int, regionBytes: Int, exportCookie: MmapCookie? = nil) {
        self.mapping = mapping
        self.mmapOffset = mmapOffset
        self.queueCount = queueCount
        self.regionBytes = regionBytes
        self.exportCookie = exportCookie
    }

    /// Queue `index`'s region for a ring of `queueSize` entries, or nil past the queues the
    /// area covers. (Whether the region is large enough for the ring, `recover` checks.)
    func region(queue index: Int, queueSize: Int) -> (region: SplitInflightRegion, bytes: Int)? {
        guard index >= 0, index < queueCount else { return nil }
        return (SplitInflightRegion(base: mapping.base + index * regionBytes, queueSize: queueSize), regionBytes)
    }
}
