import VirtioSpec

/// What must have been offered or negotiated before a request is legal.
///
/// The conditions come from the "Front-end message types" section of vhost-user.rst.
public enum FeatureGate: Equatable, Sendable, CustomStringConvertible {
    /// The back end offered `VHOST_USER_F_PROTOCOL_FEATURES` (virtio bit 30) in GET_FEATURES.
    case protocolFeaturesOffered
    /// The protocol feature was negotiated with SET_PROTOCOL_FEATURES.
    case protocolFeature(ProtocolFeatures)
    /// The virtio feature was negotiated with SET_FEATURES.
    case virtioFeature(VirtioFeatures)

    public var description: String {
        switch self {
        case .protocolFeaturesOffered:
            "VHOST_USER_F_PROTOCOL_FEATURES (bit 30) offered"
        case .protocolFeature(let feature):
            "protocol feature \(feature) negotiated"
        case .virtioFeature(let feature):
            "virtio feature \(feature) negotiated"
        }
    }
}
