import VirtioSpec

/// The connection state that validating a front-end message depends on.
///
/// The back-end framework keeps one of these per connection and updates it as features are
/// negotiated; `MessageDecoder` only reads it.
public struct DecodingContext: Equatable, Sendable {
    /// The number of queues (vrings) the device has; every vring index must be below it.
    public var queueCount: UInt32
    /// How many memory regions the back end can map. SET_MEM_TABLE may carry at most
    /// min(8, this) regions. (ADD_MEM_REG's running total is connection state the caller
    /// checks.)
    public var maximumMemorySlots: UInt32
    /// The virtio features the back end offers in GET_FEATURES; SET_FEATURES may not
    /// acknowledge others.
    public var offeredFeatures: VirtioFeatures
    /// The protocol features agreed with SET_PROTOCOL_FEATURES (empty before that).
    public var negotiatedProtocolFeatures: ProtocolFeatures
    /// Whether the back end offered `VHOST_USER_F_PROTOCOL_FEATURES` (bit 30), which makes
    /// GET/SET_PROTOCOL_FEATURES and SET_VRING_ENABLE legal.
    public var protocolFeaturesEnabled: Bool
    /// The virtio features from the last SET_FEATURES (empty before that). Decides whether
    /// rings are packed (queue-size and ring-base rules) and whether IOTLB_MSG is legal.
    public var negotiatedFeatures: VirtioFeatures
    /// The protocol features the back end offers in GET_PROTOCOL_FEATURES. When set,
    /// SET_PROTOCOL_FEATURES may not acknowledge others; nil skips that check.
    public var offeredProtocolFeatures: ProtocolFeatures?

    public init(
        queueCount: UInt32,
        maximumMemorySlots: UInt32 = UInt32(MemoryTableDescription.maximumRegionCount),
        offeredFeatures: VirtioFeatures = [],
        negotiatedProtocolFeatures: ProtocolFeatures = [],
        protocolFeaturesEnabled: Bool = false,
        negotiatedFeatures: VirtioFeatures = [],
        offeredProtocolFeatures: ProtocolFeatures? = nil
    ) {
        self.queueCount = queueCount
        self.maximumMemorySlots = maximumMemorySlots
        self.offeredFeatures = offeredFeatures
        self.negotiatedProtocolFeatures = negotiatedProtocolFeatures
        self.protocolFeaturesEnabled = protocolFeaturesEnabled
        self.negotiatedFeatures = negotiatedFeatures
        self.offeredProtocolFeatures = offeredProtocolFeatures
    }

    /// Whether `gate` is satisfied.
    public func allows(_ gate: FeatureGate) -> Bool {
        switch gate {
        case .protocolFeaturesOffered: protocolFeaturesEnabled
        case .protocolFeature(let feature): negotiatedProtocolFeatures.isSuperset(of: feature)
        case .virtioFeature(let feature): negotiatedFeatures.isSuperset(of: feature)
        }
    }
}
