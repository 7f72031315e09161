/// Without an IOMMU, descriptor addresses are guest-physical addresses.
extension GuestMemory: DescriptorAddressTranslator {
    public typealias Address = GuestPhysicalAddress

    public var memory: GuestMemory { self }
}
