import VhostSystem
import VirtioCore

/// The control plane's view of one vring: what the front end has configured so far and
/// whether a worker is serving it.
struct VringSetup {
    var size: Int?
    var descriptorTable: FrontEndVirtualAddress?
    var availableRing: FrontEndVirtualAddress?
    var usedRing: FrontEndVirtualAddress?
    /// `log_guest_addr` while SET_VRING_ADDR sets the LOG flag (dirty logging of the used ring).
    var usedRingLogAddress: UInt64?
    var nextAvailableIndex: UInt16 = 0
    var kick: EventFD?
    var call: EventFD?
    var error: EventFD?
    var enabled = false
    /// Started by SET_VRING_KICK, stopped by GET_VRING_BASE.
    var started = false
}
