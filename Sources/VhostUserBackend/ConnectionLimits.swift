/// What one front end can make the back end hold, each refused past its limit with an error
/// naming the limit (docs/security.md, "Limits").
public struct ConnectionLimits: Sendable, Equatable {
    /// Memory regions in the table at once: the GET_MAX_MEM_SLOTS answer; an ADD_MEM_REG or a
    /// SET_MEM_TABLE beyond it fails. QEMU 7.2 itself never uses more than 509
    /// (VHOST_USER_MAX_RAM_SLOTS), the default and the largest value accepted.
    public var memoryRegions: Int
    /// Entries in the IOTLB (ACCESS_PLATFORM); an UPDATE beyond it fails. The default is the
    /// kernel vhost's `max_iotlb_entries`.
    public var iotlbEntries: Int
    /// Bytes of front-end memory mapped at once: every region of the memory table. A vhost-user
    /// back end pins no pages; what a front end can make it hold is shared memory mapped into
    /// its address space (and the page tables behind it), so this is its "pinned bytes" limit.
    public var mappedBytes: UInt64

    public static let maximumMemoryRegions = 509
    public static let defaultIOTLBEntries = 2048
    /// 1 TiB: far above any guest this back end serves on one host, far below the 128 TiB of
    /// user address space a hostile table could otherwise ask for.
    public static let defaultMappedBytes: UInt64 = 1 << 40

    public init(memoryRegions: Int = ConnectionLimits.maximumMemoryRegions,
                iotlbEntries: Int = ConnectionLimits.defaultIOTLBEntries,
                mappedBytes: UInt64 = ConnectionLimits.defaultMappedBytes) {
        self.memoryRegions = memoryRegions
        self.iotlbEntries = iotlbEntries
        self.mappedBytes = mappedBytes
    }
}
