import VhostUserProtocol
import VirtioSpec

extension VhostUserConnection {
    func setFeatures(_ features: VirtioFeatures) throws(BackendError) {
        let unknown = features.subtracting(offeredFeatures)
        guard unknown.isEmpty else {
            throw .invalidState(request: .setFeatures, reason: "features \(unknown) were never offered")
        }
        // QEMU re-sends SET_FEATURES while rings run (e.g. to toggle dirty logging); ring
        // features such as EVENT_IDX cannot change under a running ring.
        if vrings.contains(where: \.started) {
            let ringBits: VirtioFeatures = [.eventIndex, .indirectDescriptors, .version1, .ringPacked]
            guard features.intersection(ringBits) == negotiatedFeatures.intersection(ringBits) else {
                throw .invalidState(request: .setFeatures, reason: "ring features changed while rings run")
            }
        }
        let loggingChanged = features.contains(.logAll) != negotiatedFeatures.contains(.logAll)
        negotiatedFeatures = features
        featuresNegotiated = true
        if loggingChanged {
            logger.notice("dirty logging \(features.contains(.logAll) ? "starts" : "stops")",
                          metadata: ["log-bytes": "\(dirtyLog?.byteCount ?? 0)"])
            try updateDirtyLogging()
        }
        // Without PROTOCOL_FEATURES no SET_VRING_ENABLE will come: rings are enabled at once.
        if !features.contains(.protocolFeatures) {
            for index in vrings.indices where !vrings[index].enabled {
                vrings[index].enabled = true
                workers[index]?.mailbox.post(.setEnabled(true))
            }
        }
    }

    func setProtocolFeatures(_ features: ProtocolFeatures) throws(BackendError) {
        let unknown = features.subtracting(Self.offeredProtocolFeatures)
        guard unknown.isEmpty else {
            throw .invalidState(request: .setProtocolFeatures, reason: "protocol features \(unknown) were never offered")
        }
        negotiatedProtocolFeatures = features
    }

    /// RESET_DEVICE (and the deprecated RESET_OWNER): every ring stopped and disabled, features
    /// forgotten, the inflight area dropped, device state back to power-on. QEMU sends it on
    /// every reset of the device (since 8.2: guest reboot, driver unbound) and frees its copy of
    /// the inflight area, which it asks for again before the rings restart. The memory table and
    /// protocol features stay, as the front end does not send them again.
    func resetDevice() throws(BackendError) {
        for index in vrings.indices {
            if vrings[index].started { _ = try stopRing(index) }
        }
        vrings = Array(repeating: VringSetup(), count: vrings.count)
        negotiatedFeatures = []
        featuresNegotiated = false
        deviceStatus = 0
        releaseInflightArea()
        // A migration's destination QEMU resets its device at start, while the source's guest
        // still runs on the shared one.
        if othersConnected() {
            logger.notice("device state kept at reset: another front end is served on it")
        } else {
            device.reset()
        }
    }

    /// SET_STATUS: the driver's status byte, recorded for GET_STATUS. It resets nothing: QEMU 7.2
    /// writes 0 before it stops the rings with GET_VRING_BASE (later versions after), and
    /// resets the device with RESET_DEVICE.
    func setStatus(_ status: UInt8) {
        if status != deviceStatus {
            logger.debug("device status", metadata: ["from": "\(deviceStatus)", "to": "\(status)"])
        }
        deviceStatus = status
    }
}
