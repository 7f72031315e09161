import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioSpec

/// QEMU 7.2's vhost-user-blk message sequences (vhost-user notes §5), built on
/// `FrontEndSession.send` so the order is exactly QEMU's.
enum QEMUSequence {
    /// How the memory table reaches the back end.
    enum MemoryTableStyle: Sendable, CustomStringConvertible {
        /// One SET_MEM_TABLE with every region.
        case setMemTable
        /// One ADD_MEM_REG per region (QEMU with CONFIGURE_MEM_SLOTS).
        case addMemReg
        var description: String { self == .setMemTable ? "SET_MEM_TABLE" : "ADD_MEM_REG" }
    }

    /// What a connection agreed on.
    struct Negotiated {
        var features: VirtioFeatures
        var protocolFeatures: ProtocolFeatures
        var config: [UInt8]
        /// The eventfds QEMU passes as masked notifiers at connect.
        var maskedNotifiers: [EventFD]
    }

    /// The handshake at connect: GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
    /// GET_MAX_MEM_SLOTS, SET_OWNER; GET_FEATURES, per queue SET_VRING_CALL (masked notifier)
    /// and SET_VRING_ERR (no fd); GET_CONFIG of `configSize` bytes (57 with QEMU's defaults).
    static func connect(_ session: FrontEndSession, queueCount: Int = InProcessBackEnd.queueCount,
                        configSize: UInt32 = 57) throws -> Negotiated {
        let (features, protocolFeatures) = try session.negotiate(
            wanted: FrontEndSession.qemu72BlockFeaturesWithoutVIOMMU, wantedProtocol: FrontEndSession.qemu72ProtocolFeatures,
            requiringProtocol: [.config, .replyAck])
        try session.send(.getFeatures)
        var masked: [EventFD] = []
        for index in 0..<UInt32(queueCount) {
            let notifier = try EventFD()
            masked.append(notifier)
            try session.send(.setVringCall(VringFileIndex(index: index, hasFileDescriptor: true)),
                             descriptors: [notifier.rawValue])
            try session.send(.setVringErr(VringFileIndex(index: index, hasFileDescriptor: false)))
        }
        let config = try session.readConfig(offset: 0, size: configSize)
        return Negotiated(features: features, protocolFeatures: protocolFeatures, config: config, maskedNotifiers: masked)
    }

    /// The device start: SET_FEATURES, SET_VRING_CALL per queue (the guest notifiers),
    /// SET_FEATURES again, the memory table, per queue SET_VRING_NUM / BASE / ADDR / KICK, then
    /// SET_VRING_ERR (the guest's error eventfds, so tests can see broken rings) and
    /// SET_VRING_ENABLE(1) per queue, then GET_FEATURES (`settle`: QEMU sends nothing there,
    /// the tests need the back end to have taken the start). With `memory` nil no memory message is sent (QEMU with
    /// CONFIGURE_MEM_SLOTS sends only changes, so none on a restart).
    static func start(_ session: FrontEndSession, guest: BlockGuest, features: VirtioFeatures,
                      memory: MemoryTableStyle? = .setMemTable, bases: [UInt16]? = nil, enable: Bool = true) throws {
        try session.setFeatures(features)
        for index in guest.queues.indices {
            try session.send(.setVringCall(VringFileIndex(index: UInt32(index), hasFileDescriptor: true)),
                             descriptors: [guest.calls[index].rawValue])
        }
        try session.setFeatures(features)
        if let memory {
            try installMemory(session, guest: guest, style: memory)
        }
        for index in guest.queues.indices {
            try startRing(session, guest: guest, index: index, base: bases?[index] ?? 0)
        }
        if enable {
            for index in guest.queues.indices {
                try session.enableRing(index: UInt32(index), true)
            }
        }
        try settle(session)
    }

    /// GET_FEATURES, whose reply comes once the back end has taken every message before it:
    /// the commands those messages post to the queue workers (a ring started or enabled) are
    /// in their mailboxes before the test's next kick. Without it a slow control plane can
    /// post an enable together with the test's next message (an INVALIDATE, a GET_VRING_BASE),
    /// and the worker takes a request kicked meanwhile only after that message: a test about
    /// a request in flight finds none (CI failed so once, on a loaded machine).
    static func settle(_ session: FrontEndSession) throws {
        _ = try session.send(.getFeatures)
    }

    static func installMemory(_ session: FrontEndSession, guest: BlockGuest, style: MemoryTableStyle) throws {
        switch style {
        case .setMemTable:
            try session.setMemoryTable(guest.memoryRegions)
        case .addMemReg:
            for (region, fd) in try guest.memoryRegions {
                try session.addMemoryRegion(region, fd: fd)
            }
        }
    }

    /// SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_ERR, SET_VRING_KICK for one ring.
    static func startRing(_ session: FrontEndSession, guest: BlockGuest, index: Int, base: UInt16 = 0) throws {
        let queue = guest.queues[index]
        let ring = UInt32(index)
        let addresses = queue.frontEndVirtualAddresses
        try session.send(.setVringNum(VringState(index: ring, num: UInt32(queue.queueSize))))
        try session.send(.setVringBase(VringState(index: ring, num: UInt32(base))))
        try session.send(.setVringAddr(VringAddress(
            index: ring, flags: [], descriptorTable: addresses.descriptorTable.rawValue,
            usedRing: addresses.usedRing.rawValue, availableRing: addresses.availableRing.rawValue, logGuestAddress: 0)))
        try session.send(.setVringErr(VringFileIndex(index: ring, hasFileDescriptor: true)),
                         descriptors: [guest.errors[index].rawValue])
        try session.send(.setVringKick(VringFileIndex(index: ring, hasFileDescriptor: true)),
                         descriptors: [guest.kicks[index].rawValue])
    }

    /// The device stop: SET_VRING_ENABLE(0) per queue, then GET_VRING_BASE per queue.
    /// - Returns: each ring's next available index.
    static func stop(_ session: FrontEndSession, queueCount: Int) throws -> [UInt16] {
        for index in 0..<UInt32(queueCount) {
            try session.enableRing(index: index, false)
        }
        return try (0..<UInt32(queueCount)).map { try session.stopRing(index: $0) }
    }
}
