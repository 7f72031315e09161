import IOMMUModel
import VhostUserFrontEnd
import VhostUserProtocol

/// Sends what the IOMMU model's mapper produced as IOTLB_MSG requests, each acknowledged.
enum IOTLBSender {
    static func send(_ messages: [IOTLBMessageToSend], on session: FrontEndSession) throws(BenchError) {
        for message in messages {
            let wire: IOTLBMessage
            switch message {
            case .update(let iova, let size, let userAddress, let permission):
                wire = IOTLBMessage(iova: iova, size: size, userAddress: userAddress,
                                    permission: IOTLBPermission(rawValue: permission.rawValue) ?? .readWrite, type: .update)
            case .invalidate(let iova, let size):
                wire = IOTLBMessage(iova: iova, size: size, userAddress: 0, permission: .none, type: .invalidate)
            }
            do throws(FrontEndError) {
                try session.send(.iotlbMsg(wire), needReply: true)
            } catch {
                throw .protocolFailure(error)
            }
        }
    }
}
