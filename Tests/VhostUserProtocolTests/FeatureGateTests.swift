import Testing
import VhostUserProtocol
import VirtioSpec

/// `context` with exactly `gate` taken away.
func withoutGate(_ gate: FeatureGate, _ context: DecodingContext = permissiveContext) -> DecodingContext {
    var context = context
    switch gate {
    case .protocolFeaturesOffered: context.protocolFeaturesEnabled = false
    case .protocolFeature(let feature): context.negotiatedProtocolFeatures.subtract(feature)
    case .virtioFeature(let feature): context.negotiatedFeatures.subtract(feature)
    }
    return context
}

@Suite("Feature gating")
struct FeatureGateTests {
    /// The gates, written out from vhost-user.rst independently of `VhostUserRequest.gate`.
    static let specifiedGates: [VhostUserRequest: FeatureGate] = [
        .getProtocolFeatures: .protocolFeaturesOffered,
        .setProtocolFeatures: .protocolFeaturesOffered,
        .setVringEnable: .protocolFeaturesOffered,
        .getQueueNum: .protocolFeature(.multiQueue),
        .setLogBase: .protocolFeature(.logShmfd),
        .sendRarp: .protocolFeature(.rarp),
        .netSetMtu: .protocolFeature(.mtu),
        .setBackendReqFd: .protocolFeature(.backendReq),
        .iotlbMsg: .virtioFeature(.accessPlatform),
        .setVringEndian: .protocolFeature(.crossEndian),
        .getConfig: .protocolFeature(.config),
        .setConfig: .protocolFeature(.config),
        .createCryptoSession: .protocolFeature(.cryptoSession),
        .closeCryptoSession: .protocolFeature(.cryptoSession),
        .postcopyAdvise: .protocolFeature(.pagefault),
        .postcopyListen: .protocolFeature(.pagefault),
        .postcopyEnd: .protocolFeature(.pagefault),
        .getInflightFd: .protocolFeature(.inflightShmfd),
        .setInflightFd: .protocolFeature(.inflightShmfd),
        .resetDevice: .protocolFeature(.resetDevice),
        .vringKick: .protocolFeature(.inbandNotifications),
        .getMaxMemSlots: .protocolFeature(.configureMemSlots),
        .addMemReg: .protocolFeature(.configureMemSlots),
        .remMemReg: .protocolFeature(.configureMemSlots),
        .setStatus: .protocolFeature(.status),
        .getStatus: .protocolFeature(.status),
        .getSharedObject: .protocolFeature(.sharedObject),
        .setDeviceStateFd: .protocolFeature(.deviceState),
        .checkDeviceState: .protocolFeature(.deviceState),
    ]

    @Test("gate matches the specification", arguments: VhostUserRequest.allCases)
    func gateMatchesTheSpecification(request: VhostUserRequest) {
        #expect(request.gate == Self.specifiedGates[request])
    }

    @Test("rejects a gated request without its feature", arguments: qemuFixtures.filter { $0.expected.request.gate != nil })
    func rejectsGatedRequestWithoutItsFeature(_ fixture: Fixture) throws {
        let gate = try #require(fixture.expected.request.gate)
        let error = thrownError { () throws(ProtocolError) in
            try decodeMessage(fixture.bytes, fds: fixture.fds, context: withoutGate(gate))
        }
        #expect(error == .featureNotNegotiated(request: fixture.expected.request, missing: gate))
    }

    @Test("accepts an ungated request under a fresh connection", arguments: qemuFixtures.filter { $0.expected.request.gate == nil })
    func acceptsUngatedRequestOnAFreshConnection(_ fixture: Fixture) throws {
        // Nothing negotiated yet; only what the device has and offers.
        let fresh = DecodingContext(queueCount: 8, offeredFeatures: VirtioFeatures(rawValue: .max))
        #expect(try decodeMessage(fixture.bytes, fds: fixture.fds, context: fresh) == fixture.expected)
    }

    @Test func iotlbNeedsAccessPlatformNegotiatedNotJustOffered() {
        var context = permissiveContext
        context.negotiatedFeatures = [.version1]
        context.offeredFeatures = [.version1, .accessPlatform]
        let bytes = iotlb(iova: 0x1000, size: 0x1000, uaddr: 0x7000, perm: 3, type: 2)
        #expect(thrownError { () throws(ProtocolError) in try decodeMessage(bytes, context: context) }
            == .featureNotNegotiated(request: .iotlbMsg, missing: .virtioFeature(.accessPlatform)))
    }

    @Test func featureNamesAppearInTheErrorMessage() {
        let error = ProtocolError.featureNotNegotiated(request: .getConfig, missing: .protocolFeature(.config))
        #expect(error.description == "VHOST_USER_GET_CONFIG requires protocol feature [CONFIG] negotiated")
    }
}
