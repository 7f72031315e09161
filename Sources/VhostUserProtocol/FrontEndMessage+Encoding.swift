extension FrontEndMessage {
    /// The bytes a front end sends for this message: the header (flags 0x1, or 0x9 with
    /// `needReply`) followed by the payload exactly as QEMU lays it out, and how many file
    /// descriptors must travel with it (the lower bound of
    /// `MessageDecoder.requiredFileDescriptorCount(for:)`; REM_MEM_REG sends none).
    ///
    /// `MessageDecoder.decode` accepts everything this produces, given a context under which
    /// the message is legal.
    public func encoded(needReply: Bool = false) -> (bytes: [UInt8], fileDescriptorCount: Int) {
        return (MessageHeader.framedRequest(request.rawValue, needReply: needReply, payload: payloadBytes),
                MessageDecoder.requiredFileDescriptorCount(for: self).lowerBound)
    }

    /// The payload bytes alone.
    public var payloadBytes: [UInt8] {
        var writer = ByteWriter()
        switch self {
        case .getFeatures, .setOwner, .resetOwner, .setLogFd, .getProtocolFeatures, .getQueueNum,
             .setBackendReqFd, .postcopyAdvise, .postcopyListen, .postcopyEnd, .gpuSetSocket,
             .resetDevice, .getMaxMemSlots, .getStatus, .checkDeviceState, .getShmemConfig:
            break
        case .setFeatures(let features):
            writer.append(features.rawValue)
        case .setProtocolFeatures(let features):
            writer.append(features.rawValue)
        case .sendRarp(let value), .netSetMtu(let value), .closeCryptoSession(let value):
            writer.append(value)
        case .setStatus(let status):
            writer.append(UInt64(status))
        case .setMemTable(let table):
            table.write(to: &writer)
        case .setLogBase(let log):
            log.write(to: &writer)
        case .setVringNum(let state), .setVringBase(let state), .getVringBase(let state),
             .setVringEnable(let state), .setVringEndian(let state), .vringKick(let state):
            state.write(to: &writer)
        case .setVringAddr(let address):
            address.write(to: &writer)
        case .setVringKick(let file), .setVringCall(let file), .setVringErr(let file):
            file.write(to: &writer)
        case .iotlbMsg(let message):
            message.write(to: &writer)
        case .getConfig(let config), .setConfig(let config):
            config.write(to: &writer)
        case .createCryptoSession(let bytes):
            writer.append(contentsOf: bytes)
        case .getInflightFd(let inflight), .setInflightFd(let inflight):
            inflight.write(to: &writer)
        case .addMemReg(let region), .remMemReg(let region):
            region.write(to: &writer)
        case .getSharedObject(let id):
            id.write(to: &writer)
        case .setDeviceStateFd(let transfer):
            transfer.write(to: &writer)
        }
        return writer.bytes
    }
}
