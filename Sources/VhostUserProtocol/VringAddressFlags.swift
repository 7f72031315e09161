/// The `flags` word of a vring address payload.
public struct VringAddressFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// `VHOST_VRING_F_LOG` (bit 0): log writes to the used ring at `logGuestAddress`.
    public static let log = VringAddressFlags(rawValue: 0x1)

    /// Every bit the protocol defines.
    public static let defined: VringAddressFlags = [.log]
}
