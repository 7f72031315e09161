extension VirtioFeatures: CustomStringConvertible {
    public static let names: [(VirtioFeatures, String)] = [
        (.sizeMax, "SIZE_MAX"), (.segMax, "SEG_MAX"), (.geometry, "GEOMETRY"),
        (.readOnly, "RO"), (.blockSize, "BLK_SIZE"), (.flush, "FLUSH"),
        (.topology, "TOPOLOGY"), (.configWCE, "CONFIG_WCE"), (.multiQueue, "MQ"),
        (.discard, "DISCARD"), (.writeZeroes, "WRITE_ZEROES"), (.lifetime, "LIFETIME"),
        (.secureErase, "SECURE_ERASE"), (.zoned, "ZONED"),
        (.notifyOnEmpty, "NOTIFY_ON_EMPTY"), (.logAll, "LOG_ALL"), (.anyLayout, "ANY_LAYOUT"),
        (.indirectDescriptors, "INDIRECT_DESC"), (.eventIndex, "EVENT_IDX"),
        (.protocolFeatures, "PROTOCOL_FEATURES"), (.version1, "VERSION_1"),
        (.accessPlatform, "ACCESS_PLATFORM"), (.ringPacked, "RING_PACKED"),
        (.inOrder, "IN_ORDER"), (.orderPlatform, "ORDER_PLATFORM"), (.ringReset, "RING_RESET"),
    ]

    /// The names of the set bits, e.g. `[FLUSH, VERSION_1, 0x1000000000000]` (unnamed bits in hex).
    public var description: String {
        featureListDescription(rawValue: rawValue, names: Self.names.map { ($0.0.rawValue, $0.1) })
    }
}

/// Formats a feature word as its named bits plus the unnamed remainder in hex (virtio and
/// vhost-user protocol feature words alike).
public func featureListDescription(rawValue: UInt64, names: [(UInt64, String)]) -> String {
    var parts: [String] = []
    var rest = rawValue
    for (bit, name) in names where rawValue & bit != 0 {
        parts.append(name)
        rest &= ~bit
    }
    if rest != 0 {
        parts.append("0x" + String(rest, radix: 16))
    }
    return "[" + parts.joined(separator: ", ") + "]"
}
