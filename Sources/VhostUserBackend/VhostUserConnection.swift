import IOMMUModel
import Logging
import VhostSystem
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// One front end's session: reads messages from the socket, validates them in one place
/// (`MessageDecoder`), dispatches them, replies, and owns the memory table, the rings' set-up and
/// the queue workers.
final class VhostUserConnection {
    enum Outcome {
        case keepServing
        case closed(reason: String)
    }

    /// How long the rest of a message may take to arrive once its first bytes came.
    static let messageDeadlineMilliseconds = 5_000
    /// How long the control plane waits for a worker to stop or swap memory tables.
    static let workerTimeoutMilliseconds = 30_000

    /// Protocol features this back end offers. Not INBAND_NOTIFICATIONS (QEMU implements none):
    /// see docs/protocol.md. BACKEND_REQ and REPLY_ACK go with ACCESS_PLATFORM (QEMU 7.2 refuses
    /// bit 33 without them). STATUS is recorded only (`setStatus`). LOG_SHMFD, with LOG_ALL among
    /// the virtio features: live migration's dirty logging (`+DirtyLogging`).
    static let offeredProtocolFeatures: ProtocolFeatures = [
        .multiQueue, .logShmfd, .replyAck, .backendReq, .config, .configureMemSlots, .resetDevice, .inflightShmfd,
        .status,
    ]

    let socket: UnixSocket
    let device: any VhostUserDevice
    /// Passed to every queue worker.
    let polling: QueuePolling
    let logger: Logger
    let offeredFeatures: VirtioFeatures
    /// Regions, IOTLB entries and mapped bytes this front end may make us hold.
    let limits: ConnectionLimits
    /// Whether another front end is served on the same device now (`ControlPlane`): a reset
    /// from this one then leaves the device's state, which the other's guest uses, alone.
    let othersConnected: () -> Bool

    var ownerSet = false
    var negotiatedFeatures: VirtioFeatures = []
    var featuresNegotiated = false
    var negotiatedProtocolFeatures: ProtocolFeatures = []
    /// The device status byte the front end last set (SET_STATUS), answered by GET_STATUS.
    var deviceStatus: UInt8 = 0
    var memory: GuestMemory
    var vrings: [VringSetup]
    var workers: [QueueWorker?]
    /// ACCESS_PLATFORM: the IOTLB built from the front end's UPDATEs and INVALIDATEs, the
    /// back-end channel (SET_BACKEND_REQ_FD), and the counts logged at the end.
    /// The IOTLB with its I/O page-table mirror: workers translate through the page table (the
    /// faster structure, docs/iommu.md "Measurements"), falling back to the IOTLB.
    var iotlb: IOPageTableMirror
    var backendChannel: BackendChannel?
    // INFLIGHT_SHMFD: this connection's export file (a sealed sparse memfd) and the cookie
    // table that places areas in it; the area in use; the descriptor the next reply carries.
    var exportFile: OwnedFileDescriptor?
    var exportCookies: MmapCookieTable?
    var exportCount: UInt64 = 0
    var inflightArea: InflightArea?
    var pendingReplyDescriptor: Int32?
    /// LOG_SHMFD: the dirty log SET_LOG_BASE mapped last (used while LOG_ALL is negotiated).
    var dirtyLog: DirtyPageLog?
    var iotlbUpdates = 0
    var iotlbInvalidations = 0

    private let payloadBuffer: UnsafeMutableRawBufferPointer

    init(socket: UnixSocket, device: any VhostUserDevice, polling: QueuePolling = .off,
         limits: ConnectionLimits = ConnectionLimits(), othersConnected: @escaping () -> Bool = { false },
         logger: Logger) {
        self.socket = socket
        self.othersConnected = othersConnected
        self.limits = limits
        iotlb = IOPageTableMirror(iotlbEntryLimit: limits.iotlbEntries, preallocatedTables: 4)
        self.polling = polling
        self.device = device
        self.logger = logger
        offeredFeatures = device.features.union([.protocolFeatures, .accessPlatform, .logAll])
        memory = GuestMemory(maximumRegions: limits.memoryRegions)
        vrings = Array(repeating: VringSetup(), count: device.numberOfQueues)
        workers = Array(repeating: nil, count: device.numberOfQueues)
        payloadBuffer = .allocate(byteCount: Int(MessageHeader.maximumPayloadSize), alignment: 8)
    }

    deinit {
        payloadBuffer.deallocate()
    }

    /// The GET_MAX_MEM_SLOTS answer.
    var maximumMemorySlots: UInt32 { UInt32(clamping: limits.memoryRegions) }

    var decodingContext: DecodingContext {
        DecodingContext(
            queueCount: UInt32(vrings.count),
            maximumMemorySlots: maximumMemorySlots,
            offeredFeatures: offeredFeatures,
            negotiatedProtocolFeatures: negotiatedProtocolFeatures,
            protocolFeaturesEnabled: true,
            negotiatedFeatures: negotiatedFeatures,
            offeredProtocolFeatures: Self.offeredProtocolFeatures)
    }

    /// Reads, validates, handles and answers one message.
    func serveOneMessage() -> Outcome {
        var headerBytes = (UInt64(0), UInt32(0))
        let header: MessageHeader
        var descriptors: [OwnedFileDescriptor]
        do {
            let received = try withUnsafeMutableBytes(of: &headerBytes) { raw throws(SystemError) in
                try socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<MessageHeader.byteCount]))
            }
            if received.byteCount == 0 { return .closed(reason: "front end closed the connection") }
            // Once a message has started, all of it must arrive within this bound.
            let deadline = MonotonicDeadline(millisecondsFromNow: Self.messageDeadlineMilliseconds)
            descriptors = received.descriptors
            var truncated = received.controlTruncated
            if received.byteCount < MessageHeader.byteCount {
                let rest = try withUnsafeMutableBytes(of: &headerBytes) { raw throws(SystemError) in
                    try socket.receiveExactly(into: UnsafeMutableRawBufferPointer(
                        rebasing: raw[received.byteCount..<MessageHeader.byteCount]), deadline: deadline)
                }
                descriptors += rest.descriptors
                truncated = truncated || rest.controlTruncated
            }
            header = try withUnsafeBytes(of: &headerBytes) { raw throws(ProtocolError) in
                try MessageHeader(parsing: UnsafeRawBufferPointer(rebasing: raw[0..<MessageHeader.byteCount]))
            }
            let payloadSize = Int(header.size)
            if payloadSize > 0 {
                let rest = try socket.receiveExactly(
                    into: UnsafeMutableRawBufferPointer(rebasing: payloadBuffer[0..<payloadSize]), deadline: deadline)
                descriptors += rest.descriptors
                truncated = truncated || rest.controlTruncated
            }
            if truncated { return close(after: .descriptorsTruncated) }
        } catch let error as SystemError {
            return .closed(reason: "\(BackendError.connection(error))")
        } catch let error as ProtocolError {
            return close(after: .malformedMessage(error))
        } catch {
            return .closed(reason: "\(error)")
        }

        let message: FrontEndMessage
        do {
            message = try MessageDecoder.decode(
                header: header, payload: UnsafeRawBufferPointer(rebasing: payloadBuffer[0..<Int(header.size)]),
                fileDescriptorCount: descriptors.count, context: decodingContext)
        } catch {
            return close(after: .malformedMessage(error))
        }
        let request = message.request
        let needReply = header.flags.contains(.needReply)
        logger.debug("message", metadata: ["request": "\(request)", "fds": "\(descriptors.count)"])

        do throws(BackendError) {
            let reply = try dispatch(message, descriptors: descriptors)
            try send(reply, to: request, needReply: needReply, succeeded: true)
            return .keepServing
        } catch {
            switch error.consequence {
            case .refuseRequest where !request.hasReplyBody:
                logger.warning("request refused", metadata: ["request": "\(request)", "error": "\(error)"])
                do {
                    try send(nil, to: request, needReply: needReply, succeeded: false)
                } catch {
                    return .closed(reason: "\(error)")
                }
                return .keepServing
            case .refuseRequest, .closeConnection:
                // A request with a reply body cannot be refused: REPLY_ACK does not apply to it
                // (a u64 ack would be taken for the body), and silence would leave the front end
                // waiting for a reply forever.
                return close(after: error)
            }
        }
    }

    /// The one reply policy: a request with a reply body always gets it (and no extra ack); any
    /// other request gets a u64 ack (0 success, 1 failure) iff NEED_REPLY was set and REPLY_ACK
    /// negotiated. (A request with a reply body that fails closes the connection instead, see
    /// `serveOneMessage`.)
    private func send(_ reply: [UInt8]?, to request: VhostUserRequest, needReply: Bool, succeeded: Bool) throws(BackendError) {
        var bytes: [UInt8]
        if let reply {
            bytes = reply
        } else if needReply && negotiatedProtocolFeatures.contains(.replyAck) {
            bytes = Reply.ack(request: request, value: succeeded ? 0 : 1).encoded().bytes
        } else {
            return
        }
        // GET_INFLIGHT_FD's reply carries the export file; nothing else carries a descriptor.
        let descriptors = pendingReplyDescriptor.map { [$0] } ?? []
        pendingReplyDescriptor = nil
        do {
            try socket.send(bytes, descriptors: descriptors)
        } catch {
            throw .connection(error)
        }
    }

    private func close(after error: BackendError) -> Outcome {
        logger.error("closing the connection", metadata: ["error": "\(error)"])
        return .closed(reason: "\(error)")
    }

    /// Stops every worker and drops the memory table and the rings' descriptors.
    func close() {
        if iotlbUpdates + iotlbInvalidations > 0 || backendChannel != nil {
            logger.info("IOTLB traffic", metadata: iotlbSummary.mapValues { .string($0) })
        }
        backendChannel?.shutdown()
        backendChannel = nil
        for worker in workers {
            worker?.shutdown()
        }
        workers = Array(repeating: nil, count: workers.count)
        vrings = Array(repeating: VringSetup(), count: vrings.count)
        memory = GuestMemory(maximumRegions: limits.memoryRegions)
        socket.shutdown()
    }
}
