import VhostUserProtocol
import VirtioSpec

extension FrontEndSession {
    /// The protocol features QEMU 7.2 knows (bits 0–16, MQ … STATUS); it never acknowledges
    /// others.
    public static let qemu72ProtocolFeatures = ProtocolFeatures(rawValue: (1 << 17) - 1)

    /// The virtio features QEMU 7.2's vhost-user-blk passes between guest and back end
    /// (`user_feature_bits` in hw/block/vhost-user-blk.c).
    public static let qemu72BlockFeatures: VirtioFeatures = [
        .sizeMax, .segMax, .geometry, .blockSize, .topology, .multiQueue, .readOnly, .flush,
        .configWCE, .discard, .writeZeroes, .version1, .indirectDescriptors, .eventIndex,
        .notifyOnEmpty, .ringPacked, .accessPlatform, .ringReset,
    ]

    /// What QEMU 7.2 acknowledges for a guest without a vIOMMU: it clears ACCESS_PLATFORM
    /// (`vhost_dev_has_iommu` is false), so addresses stay guest-physical / user addresses.
    public static let qemu72BlockFeaturesWithoutVIOMMU = qemu72BlockFeatures.subtracting(.accessPlatform)

    /// The handshake QEMU 7.2 does when it connects: GET_FEATURES; if bit 30 is offered,
    /// GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES (offered ∩ `wantedProtocol`); then
    /// GET_QUEUE_NUM if MQ was agreed, GET_MAX_MEM_SLOTS if CONFIGURE_MEM_SLOTS was agreed;
    /// and SET_OWNER.
    ///
    /// SET_FEATURES is not part of it (QEMU sends it when the device starts): call
    /// `setFeatures(_:)`. Nor is SET_BACKEND_REQ_FD: a caller that wants the back-end channel
    /// sends it with `send(.setBackendReqFd, descriptors: [fd], needReply: true)`.
    ///
    /// - Parameters:
    ///   - wanted: the virtio features the caller would use if offered.
    ///   - wantedProtocol: the protocol features to agree to if offered
    ///     (`qemu72ProtocolFeatures` for QEMU's choice).
    ///   - required: virtio features without which the handshake stops (implicitly wanted).
    ///   - requiredProtocol: protocol features without which the handshake stops.
    /// - Returns: the virtio features offered and wanted (bit 30 is handled by `setFeatures`),
    ///   and the protocol features agreed.
    /// - Throws: `.notOffered` when a required feature is missing, checked right after the
    ///   reply that reveals it (before SET_PROTOCOL_FEATURES and SET_OWNER); any `send` error.
    @discardableResult
    public func negotiate(
        wanted: VirtioFeatures, wantedProtocol: ProtocolFeatures,
        requiring required: VirtioFeatures = [], requiringProtocol requiredProtocol: ProtocolFeatures = []
    ) throws(FrontEndError) -> (features: VirtioFeatures, protocolFeatures: ProtocolFeatures) {
        let offered = try value(of: .getFeatures) { reply in
            if case .features(let features) = reply { features } else { nil }
        }
        let missing = required.subtracting(offered)
        guard missing.isEmpty else {
            throw .notOffered(.virtioFeature(missing))
        }
        var agreed: ProtocolFeatures = []
        if offered.contains(.protocolFeatures) {
            let offeredProtocol = try value(of: .getProtocolFeatures) { reply in
                if case .protocolFeatures(let features) = reply { features } else { nil }
            }
            let missingProtocol = requiredProtocol.subtracting(offeredProtocol)
            guard missingProtocol.isEmpty else {
                throw .notOffered(.protocolFeature(missingProtocol))
            }
            agreed = offeredProtocol.intersection(wantedProtocol.union(requiredProtocol))
            try send(.setProtocolFeatures(agreed))
            if agreed.contains(.multiQueue) {
                try send(.getQueueNum)
            }
            if agreed.contains(.configureMemSlots) {
                try send(.getMaxMemSlots)
            }
        } else if !requiredProtocol.isEmpty {
            throw .notOffered(.protocolFeaturesOffered)
        }
        try send(.setOwner)
        return (offered.intersection(wanted.union(required)), agreed)
    }

    /// SET_FEATURES with `features`, plus bit 30 when the back end offered it (QEMU 7.2 always
    /// adds it then). With `logAll` it asks for an ack, as QEMU does while migrating.
    ///
    /// To send exactly some bits (for example without bit 30), use `send(.setFeatures(_))`.
    public func setFeatures(_ features: VirtioFeatures) throws(FrontEndError) {
        var sent = features
        if offeredFeatures.contains(.protocolFeatures) {
            sent.insert(.protocolFeatures)
        }
        try send(.setFeatures(sent), needReply: sent.contains(.logAll))
    }
}
