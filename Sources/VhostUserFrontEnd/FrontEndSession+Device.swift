import VhostUserProtocol

extension FrontEndSession {
    /// GET_CONFIG for `size` bytes at `offset` (flags 0, as QEMU sends it). QEMU 7.2's
    /// vhost-user-blk reads offset 0, size 57 with its default properties.
    ///
    /// - Returns: the device's config bytes, exactly `size` of them.
    /// - Throws: `.notNegotiated` without the CONFIG protocol feature; `.invalidMessage` unless
    ///   1 ≤ size and offset + size ≤ 256; any `send` error.
    public func readConfig(offset: UInt32, size: UInt32) throws(FrontEndError) -> [UInt8] {
        try requireNegotiated(.getConfig)
        let access = try build { () throws(ProtocolError) in try ConfigAccess.read(offset: offset, size: size) }
        return try value(of: .getConfig(access)) { reply in
            if case .config(let config) = reply { config.bytes } else { nil }
        }
    }

    /// SET_CONFIG of `bytes` at `offset` (flags 0), with NEED_REPLY, as QEMU 7.2 sends the
    /// writeback byte (offset 32, one byte).
    ///
    /// - Throws: `.notNegotiated` without CONFIG; `.invalidMessage` for an empty or
    ///   out-of-range write; `.failureAck`; any `send` error.
    public func writeConfig(offset: UInt32, bytes: [UInt8]) throws(FrontEndError) {
        try requireNegotiated(.setConfig)
        let access = try build { () throws(ProtocolError) in try ConfigAccess(offset: offset, bytes: bytes) }
        try send(.setConfig(access), needReply: true)
    }

    /// RESET_DEVICE, without NEED_REPLY as QEMU sends it. (QEMU 7.2 never sends it for blk.)
    ///
    /// - Throws: `.notNegotiated` without the RESET_DEVICE protocol feature; any `send` error.
    public func resetDevice() throws(FrontEndError) {
        try requireNegotiated(.resetDevice)
        try send(.resetDevice)
    }
}
