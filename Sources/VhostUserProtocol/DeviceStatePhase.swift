/// Migration phase of a device-state transfer (SET_DEVICE_STATE_FD).
public enum DeviceStatePhase: UInt32, Sendable, CaseIterable {
    /// The device (all rings) is stopped; the only phase the specification defines.
    case stopped = 0
}
