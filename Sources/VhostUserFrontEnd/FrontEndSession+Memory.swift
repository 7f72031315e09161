import VhostUserProtocol

extension FrontEndSession {
    /// SET_MEM_TABLE with `regions` in order, each region's fd attached in the same order, with
    /// NEED_REPLY (QEMU 7.2 waits for the ack whenever REPLY_ACK is negotiated).
    ///
    /// The fds stay the caller's; the back end receives duplicates. QEMU passes the same memfd
    /// once per region when regions share it, and so may the caller.
    ///
    /// - Throws: `.invalidMessage` for no regions, more than 8, or overlapping regions;
    ///   `.failureAck`; any `send` error.
    public func setMemoryTable(_ regions: [(region: MemoryRegionDescription, fd: Int32)]) throws(FrontEndError) {
        let table = try build { () throws(ProtocolError) in
            try MemoryTableDescription(regions: regions.map { $0.region })
        }
        try send(.setMemTable(table), descriptors: regions.map { $0.fd }, needReply: true)
    }

    /// ADD_MEM_REG of one region with its fd, with NEED_REPLY.
    ///
    /// - Throws: `.notNegotiated` without CONFIGURE_MEM_SLOTS; `.failureAck`; any `send` error.
    public func addMemoryRegion(_ region: MemoryRegionDescription, fd: Int32) throws(FrontEndError) {
        try requireNegotiated(.addMemReg)
        try send(.addMemReg(SingleMemoryRegion(region: region)), descriptors: [fd], needReply: true)
    }

    /// REM_MEM_REG, with NEED_REPLY and no fd. As in QEMU 7.2, the region goes out with
    /// mmap_offset 0: the back end matches it by guest address, user address and size.
    ///
    /// - Throws: `.notNegotiated` without CONFIGURE_MEM_SLOTS; `.failureAck`; any `send` error.
    public func removeMemoryRegion(_ region: MemoryRegionDescription) throws(FrontEndError) {
        try requireNegotiated(.remMemReg)
        let sent = try build { () throws(ProtocolError) in
            try MemoryRegionDescription(
                guestPhysicalAddress: region.guestPhysicalAddress, size: region.size,
                userAddress: region.userAddress, mmapOffset: 0)
        }
        try send(.remMemReg(SingleMemoryRegion(region: sent)), needReply: true)
    }
}
