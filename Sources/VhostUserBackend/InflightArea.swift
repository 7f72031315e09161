import VhostSystem
import VirtioCore

/// The inflight tracking area (INFLIGHT_SHMFD) as this back end maps it: one region per queue,
/// `SplitInflightRegion.byteCount(queueSize:)` bytes each, back to back. The front end keeps
/// the memfd and hands it back after a restart; the mapping lives as long as this object, which
/// every ring using it holds (the descriptor itself is not needed once mapped).
final class InflightArea: @unchecked Sendable {  // each queue writes only its own region
    let mapping: MemoryMapping
    let mmapOffset: UInt64
    let queueCount: Int
    let queueSize: Int

    static func byteCount(queueCount: Int, queueSize: Int) -> Int {
        queueCount * SplitInflightRegion.byteCount(queueSize: queueSize)
    }

    init(mapping: MemoryMapping, mmapOffset: UInt64, queueCount: Int, queueSize: Int) {
        self.mapping = mapping
        self.mmapOffset = mmapOffset
        self.queueCount = queueCount
        self.queueSize = queueSize
    }

    /// Queue `index`'s region, or nil past the queues the area covers.
    func region(queue index: Int) -> (region: SplitInflightRegion, bytes: Int)? {
        guard index >= 0, index < queueCount else { return nil }
        let bytes = SplitInflightRegion.byteCount(queueSize: queueSize)
        return (SplitInflightRegion(base: mapping.base + index * bytes, queueSize: queueSize), bytes)
    }
}
