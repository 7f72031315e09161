/// How the mapping of an export should be cached, as a hint to whoever maps it (iommufd's and
/// VFIO's mmap entries carry the same choice for device memory).
public enum CachingHint: Hashable, Sendable {
    /// Ordinary write-back memory (memfd-backed shared memory).
    case cached
    /// Write-combining (e.g. a doorbell page written in bursts).
    case writeCombining
    /// Uncached (device registers).
    case uncached
}
