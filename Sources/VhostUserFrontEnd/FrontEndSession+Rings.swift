import VhostSystem
import VhostUserProtocol

extension FrontEndSession {
    /// Sets up and starts one split ring: SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR,
    /// SET_VRING_CALL, SET_VRING_ERR, SET_VRING_KICK, none with NEED_REPLY.
    ///
    /// QEMU 7.2 sends SET_VRING_NUM, BASE, ADDR, KICK in this order when it starts a ring; it
    /// sends SET_VRING_ERR and a first SET_VRING_CALL earlier (at connect, and before the
    /// memory table at start). This step keeps what matters to a back end: both notifiers
    /// are in place before the kick, which starts the ring. A nil `call` or `error` is sent
    /// with the no-fd bit (bit 8), as QEMU does for a queue without an interrupt vector.
    ///
    /// The eventfds stay the caller's; the back end receives duplicates. Every value is
    /// checked before the first byte goes out.
    ///
    /// - Parameters:
    ///   - size: the queue size (SET_VRING_NUM).
    ///   - descriptorTable, availableRing, usedRing: the rings' addresses in the front end's
    ///     address space (the `userAddress` side of the memory table).
    ///   - base: the next available index the back end starts from (SET_VRING_BASE).
    /// - Throws: `.invalidMessage` for an index above 255 (the kick/call/err encoding has
    ///   8 bits); any `send` error.
    public func configureRing(
        index: UInt32, size: UInt16, descriptorTable: UInt64, availableRing: UInt64, usedRing: UInt64,
        base: UInt16 = 0, kick: EventFD, call: EventFD?, error: EventFD?
    ) throws(FrontEndError) {
        let address = try build { () throws(ProtocolError) in
            try VringAddress(
                index: index, flags: [], descriptorTable: descriptorTable, usedRing: usedRing,
                availableRing: availableRing, logGuestAddress: 0)
        }
        let kickIndex = try build { () throws(ProtocolError) in try VringFileIndex(index: index, hasFileDescriptor: true) }
        let callIndex = try build { () throws(ProtocolError) in try VringFileIndex(index: index, hasFileDescriptor: call != nil) }
        let errorIndex = try build { () throws(ProtocolError) in try VringFileIndex(index: index, hasFileDescriptor: error != nil) }
        try send(.setVringNum(VringState(index: index, num: UInt32(size))))
        try send(.setVringBase(VringState(index: index, num: UInt32(base))))
        try send(.setVringAddr(address))
        try send(.setVringCall(callIndex), descriptors: call.map { [$0.rawValue] } ?? [])
        try send(.setVringErr(errorIndex), descriptors: error.map { [$0.rawValue] } ?? [])
        try send(.setVringKick(kickIndex), descriptors: [kick.rawValue])
    }

    /// SET_VRING_ENABLE with num 1 or 0, as QEMU 7.2 sends for every ring at start and stop.
    ///
    /// - Throws: `.notNegotiated` unless the back end offered bit 30; any `send` error.
    public func enableRing(index: UInt32, _ enabled: Bool) throws(FrontEndError) {
        try requireNegotiated(.setVringEnable)
        try send(.setVringEnable(VringState(index: index, num: enabled ? 1 : 0)))
    }

    /// GET_VRING_BASE: stops the ring and returns the next available index the back end would
    /// process (what QEMU sends back with SET_VRING_BASE on the next start). Split rings only.
    ///
    /// - Throws: `.invalidReply(.invalidVringBase)` if the reply uses bits 16–31 (reserved for
    ///   split rings; use `send(.getVringBase(_))` for packed rings); any `send` error.
    public func stopRing(index: UInt32) throws(FrontEndError) -> UInt16 {
        let state = try value(of: .getVringBase(VringState(index: index, num: 0))) { reply in
            if case .vringBase(let state) = reply { state } else { nil }
        }
        guard let base = UInt16(exactly: state.num) else {
            throw .invalidReply(request: .getVringBase, .invalidVringBase(state.num))
        }
        return base
    }
}
