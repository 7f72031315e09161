/// Applying the messages a vIOMMU sends.
extension IOTLB {
    /// Applies an UPDATE or INVALIDATE, as the back end does on VHOST_USER_IOTLB_MSG.
    ///
    /// - Throws: ``IOTLBError`` for an UPDATE that ``update(iova:size:userAddress:permission:)``
    ///   refuses.
    public mutating func apply(_ message: IOTLBMessageToSend) throws(IOTLBError) {
        switch message {
        case .update(let iova, let size, let userAddress, let permission):
            try update(iova: iova, size: size, userAddress: userAddress, permission: permission)
        case .invalidate(let iova, let size):
            invalidate(iova: iova, size: size)
        }
    }
}
