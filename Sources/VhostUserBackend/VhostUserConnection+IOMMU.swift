import IOMMUModel
import VhostSystem
import VhostUserProtocol
import VirtioCore

extension VhostUserConnection {
    /// Whether ring and descriptor addresses are IOVAs (ACCESS_PLATFORM negotiated: QEMU
    /// clears the bit when no vIOMMU is in the DMA path).
    var usesIOVAs: Bool { negotiatedFeatures.contains(.accessPlatform) }

    /// SET_BACKEND_REQ_FD: the connection owns the back-end channel from now on.
    func setBackendChannel(descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        guard let descriptor = descriptors.first else {
            throw .invalidValue(request: .setBackendReqFd, reason: "no file descriptor attached")
        }
        backendChannel?.shutdown()
        backendChannel = BackendChannel(socket: UnixSocket(adopting: descriptor), logger: logger)
    }

    /// IOTLB_MSG always has a u64 reply (QEMU waits for it): 0 when applied, 1 when refused
    /// (an UPDATE the IOTLB cannot take). Only an unresponsive worker closes the connection.
    func answerIOTLBMessage(_ message: IOTLBMessage) throws(BackendError) -> [UInt8] {
        var value: UInt64 = 0
        do {
            try handleIOTLBMessage(message)
        } catch where error.consequence == .refuseRequest {
            logger.warning("IOTLB message refused", metadata: ["error": "\(error)"])
            value = 1
        }
        return Reply.ack(request: .iotlbMsg, value: value).encoded().bytes
    }

    /// IOTLB_MSG: UPDATE or INVALIDATE (the decoder refuses other types).
    ///
    /// An UPDATE only adds translations: workers get the new snapshot by command and the reply
    /// goes at once (the worker stalled on a MISS retries when it takes the snapshot). An
    /// INVALIDATE is answered only after every worker has switched to the snapshot without
    /// the range (between two requests it walks) and no request in flight still uses the
    /// range (each pins its buffers' IOVA ranges until it completes: `InFlightPins`). Only
    /// then may the guest reuse the IOVA. Requests elsewhere go on meanwhile.
    func handleIOTLBMessage(_ message: IOTLBMessage) throws(BackendError) {
        logger.debug("IOTLB message", metadata: [
            "type": "\(message.type)", "iova": "0x\(String(message.iova, radix: 16))",
            "size": "0x\(String(message.size, radix: 16))", "uaddr": "0x\(String(message.userAddress, radix: 16))",
            "perm": "\(message.permission)"])
        switch message.type {
        case .update:
            let permission = IOMMUPermission(rawValue: message.permission.rawValue)
            do {
                try iotlb.update(iova: message.iova, size: message.size, userAddress: message.userAddress,
                                 permission: permission)
            } catch {
                throw .invalidValue(request: .iotlbMsg, reason: "UPDATE refused: \(error)")
            }
            iotlbUpdates += 1
            for worker in workers {
                worker?.mailbox.post(.setIOTLB(iotlb, invalidated: nil, nil))
            }
        case .invalidate:
            let removed = iotlb.invalidate(iova: message.iova, size: message.size)
            iotlbInvalidations += 1
            var pending: [(Int, CommandCompletion)] = []
            for (index, worker) in workers.enumerated() {
                guard let worker else { continue }
                let completion = CommandCompletion()
                worker.mailbox.post(.setIOTLB(iotlb, invalidated: removed, completion))
                pending.append((index, completion))
            }
            for (index, completion) in pending where completion.wait(milliseconds: Self.workerTimeoutMilliseconds) == nil {
                throw .workerUnresponsive(queue: index)
            }
        default:
            throw .invalidValue(request: .iotlbMsg, reason: "IOTLB message type \(message.type) from the front end")
        }
    }

    /// The counts logged when the connection ends.
    var iotlbSummary: [String: String] {
        let channel = backendChannel?.counts ?? (misses: 0, acks: 0, failedAcks: 0)
        return ["updates": "\(iotlbUpdates)", "invalidations": "\(iotlbInvalidations)",
                "misses": "\(channel.misses)", "missAcks": "\(channel.acks)", "failedMissAcks": "\(channel.failedAcks)"]
    }
}
