import VhostUserProtocol

extension VhostUserConnection {
    /// GET_CONFIG: the bytes at [offset, offset+size) of the configuration space, zero past its end
    /// (QEMU asks for a length computed from its own properties, not from our features).
    func getConfiguration(_ access: ConfigAccess) throws(BackendError) -> [UInt8] {
        let space = device.readConfiguration()
        let start = Int(access.offset)
        let count = Int(access.size)
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count where start + index < space.count {
            bytes[index] = space[start + index]
        }
        let answer: ConfigAccess
        do {
            answer = try ConfigAccess(offset: access.offset, flags: access.flags, bytes: bytes)
        } catch {
            throw .malformedMessage(error)
        }
        return Reply.config(answer).encoded().bytes
    }

    /// SET_CONFIG: only fields the device declares writable; migration writes (flags 1) carry the
    /// whole space and are refused, as we do not offer migration.
    func setConfiguration(_ access: ConfigAccess) throws(BackendError) {
        guard access.flags == ConfigAccess.frontEndFlags else {
            throw .invalidValue(request: .setConfig, reason: "configuration writes for migration are not supported")
        }
        guard device.writeConfiguration(offset: Int(access.offset), bytes: access.bytes) else {
            throw .invalidValue(request: .setConfig,
                                reason: "offset \(access.offset) size \(access.size) is not a writable field")
        }
    }
}
