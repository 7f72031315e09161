/// Applying the messages a vIOMMU sends, to both structures.
extension IOPageTableMirror {
    /// Applies an UPDATE or INVALIDATE, as `IOTLB.apply(_:)` does, keeping the page table in
    /// sync.
    ///
    /// - Throws: `IOTLBError` for an UPDATE the IOTLB refuses; then neither structure changed.
    public mutating func apply(_ message: IOTLBMessageToSend) throws(IOTLBError) {
        switch message {
        case .update(let iova, let size, let userAddress, let permission):
            try update(iova: iova, size: size, userAddress: userAddress, permission: permission)
        case .invalidate(let iova, let size):
            invalidate(iova: iova, size: size)
        }
    }
}
