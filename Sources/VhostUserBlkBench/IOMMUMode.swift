/// Whether the front end plays a guest behind a vIOMMU (VIRTIO_F_ACCESS_PLATFORM): every ring
/// and buffer address it gives the device is then an IOVA, placed with the IOMMU model's
/// two-step mapping (reserve a window, link pages) and announced with IOTLB UPDATEs.
public enum IOMMUMode: String, Sendable, Codable, CaseIterable {
    case off
    /// All guest RAM linked in one UPDATE before the rings start: measures translation only.
    case premapped
    /// Only the rings linked up front (as QEMU does); every buffer page is linked when the
    /// back end sends a MISS for it, answered as QEMU does (UPDATE on the main socket, then
    /// the ack on the back-end channel).
    case onDemand = "on-demand"
}
