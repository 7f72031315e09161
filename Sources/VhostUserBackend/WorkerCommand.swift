import IOMMUModel
import VhostSystem
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// Everything a worker needs to start processing a ring, collected by the control plane from
/// SET_VRING_NUM / ADDR / BASE / KICK / CALL / ERR / ENABLE.
struct RingStartConfiguration: Sendable {
    var size: Int
    var descriptorTable: FrontEndVirtualAddress
    var availableRing: FrontEndVirtualAddress
    var usedRing: FrontEndVirtualAddress
    var nextAvailableIndex: UInt16
    var features: VirtioFeatures
    var kick: EventFD
    var call: EventFD?
    var error: EventFD?
    var enabled: Bool
    var memory: GuestMemory
    /// With ACCESS_PLATFORM negotiated: the IOTLB in force (the ring addresses above and every
    /// descriptor address are then IOVAs) and the back-end channel to send MISSes on.
    var iotlb: IOPageTableMirror?
    var backendChannel: BackendChannel?
    /// INFLIGHT_SHMFD: the area whose region for this queue the ring logs into.
    var inflight: InflightArea?
    /// What the ring logs for live migration.
    var dirtyLogging: DirtyLogging
    /// Why the device refuses this ring (larger than it accepts), if it does: every request on
    /// it then fails with the device's error status, so the guest sees errors, not a hang.
    var refusal: String?
}

/// What one ring logs for live migration: every page the device writes into `log`, while the
/// front end has LOG_ALL on and a log mapped; and its used ring at `usedRingAddress` (the
/// ring's `log_guest_addr`) while SET_VRING_ADDR sets the ring's LOG flag.
struct DirtyLogging: Sendable {
    var log: DirtyPageLog?
    var usedRingAddress: UInt64?

    static let off = DirtyLogging(log: nil, usedRingAddress: nil)
}

/// A message from the control plane to a queue worker. Commands are rare (ring set-up and
/// tear-down, memory table changes), so the mailbox behind them may lock; the data path never does.
enum WorkerCommand: Sendable {
    case start(RingStartConfiguration)
    /// Stops the ring; the completion receives the next available index to process.
    case stop(CommandCompletion)
    case setCall(EventFD?)
    case setError(EventFD?)
    case setEnabled(Bool)
    /// Replaces the memory table at once, even with requests in flight: requests walked
    /// afterwards use the new one. Completes once no request submitted under the old one (or
    /// an older one) is in flight: until then the old regions stay mapped.
    case setMemory(GuestMemory, CommandCompletion)
    /// Replaces the IOTLB snapshot (ACCESS_PLATFORM) at once, even with requests in flight:
    /// requests walked afterwards use the new one. For an INVALIDATE, `invalidated` is the
    /// range it removed and the completion fires once no request in flight uses any of it.
    case setIOTLB(IOPageTableMirror, invalidated: ClosedRange<UInt64>?, CommandCompletion?)
    /// Changes what the ring logs, at once (requests are logged when they complete); the
    /// completion fires once the worker logs that way.
    case setDirtyLogging(DirtyLogging, CommandCompletion)
    case exit
}
