import VhostSystem
import VhostUserProtocol

extension VhostUserConnection {
    /// The one dispatch: every validated message maps to one handler. Returns the reply body for
    /// requests that have one; `nil` means "ack if asked" (see the reply policy in `send`).
    func dispatch(_ message: FrontEndMessage, descriptors: [OwnedFileDescriptor]) throws(BackendError) -> [UInt8]? {
        switch message {
        case .getFeatures: return Reply.features(offeredFeatures).encoded().bytes
        case .setFeatures(let features): try setFeatures(features); return nil
        case .setOwner: ownerSet = true; return nil
        case .resetOwner: try resetDevice(); return nil
        case .getProtocolFeatures: return Reply.protocolFeatures(Self.offeredProtocolFeatures).encoded().bytes
        case .setProtocolFeatures(let features): try setProtocolFeatures(features); return nil
        case .getQueueNum: return Reply.queueCount(UInt64(vrings.count)).encoded().bytes
        case .getMaxMemSlots: return Reply.maximumMemorySlots(UInt64(maximumMemorySlots)).encoded().bytes
        case .setMemTable(let table): try setMemoryTable(table, descriptors: descriptors); return nil
        case .addMemReg(let region): try addMemoryRegion(region, descriptors: descriptors); return nil
        case .remMemReg(let region): try removeMemoryRegion(region); return nil
        case .setVringNum(let state): try setVringNumber(state); return nil
        case .setVringAddr(let address): try setVringAddress(address); return nil
        case .setVringBase(let state): try setVringBase(state); return nil
        case .getVringBase(let state): return try getVringBase(state)
        case .setVringKick(let file): try setVringKick(file, descriptors: descriptors); return nil
        case .setVringCall(let file): try setVringCall(file, descriptors: descriptors); return nil
        case .setVringErr(let file): try setVringError(file, descriptors: descriptors); return nil
        case .setVringEnable(let state): try setVringEnable(state); return nil
        case .getConfig(let access): return try getConfiguration(access)
        case .setConfig(let access): try setConfiguration(access); return nil
        case .resetDevice: try resetDevice(); return nil
        case .setBackendReqFd: try setBackendChannel(descriptors: descriptors); return nil
        case .iotlbMsg(let iotlbMessage): return try answerIOTLBMessage(iotlbMessage)
        case .setStatus(let status): setStatus(status); return nil
        case .getStatus: return Reply.status(deviceStatus).encoded().bytes
        case .getInflightFd(let request): return try getInflightFD(request)
        case .setInflightFd(let request): try setInflightFD(request, descriptors: descriptors); return nil
        case .setLogBase(let log): return try setLogBase(log, descriptors: descriptors)
        case .setLogFd, .sendRarp, .netSetMtu, .setVringEndian,
             .createCryptoSession, .closeCryptoSession, .postcopyAdvise, .postcopyListen, .postcopyEnd,
             .gpuSetSocket, .vringKick,
             .getSharedObject, .setDeviceStateFd, .checkDeviceState, .getShmemConfig:
            // None of these is offered; the decoder's feature gates normally refuse them first.
            throw .unsupportedRequest(message.request)
        }
    }
}
