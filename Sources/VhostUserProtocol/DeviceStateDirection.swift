/// Direction of a device-state transfer (SET_DEVICE_STATE_FD).
public enum DeviceStateDirection: UInt32, Sendable, CaseIterable {
    /// The back end writes its state into the fd (migration source).
    case save = 0
    /// The back end reads its state from the fd (migration destination).
    case load = 1
}
