import VhostSystem
import VirtioCore

/// Errors of the test front end's guest side (`GuestRAM`, `DriverSplitQueue`). They are mistakes
/// of the test or benchmark that drives them, reported instead of trapping.
public enum GuestDriverError: Error, Equatable, Sendable {
    /// Creating or mapping a memfd failed.
    case system(SystemError)
    /// The regions asked for are empty or overlap.
    case invalidLayout(String)
    /// No region has `requested` bytes left at the requested alignment.
    case outOfSpace(requested: Int)
    /// A guest-physical range that is not backed by this RAM.
    case addressNotMapped(GuestPhysicalAddress, length: Int)
    /// Not enough free descriptors for the chain.
    case noFreeDescriptors(needed: Int, available: Int)
    /// A chain with no buffers.
    case emptyChain
    /// A raw-hook index outside the descriptor table or the available ring.
    case indexOutOfRange(Int, limit: Int)
    /// A queue size that is not a power of two in 1...32768.
    case invalidQueueSize(Int)
    /// Mapping the RAM for the device side failed.
    case memory(MemoryError)
}
