extension DescriptorChain {
    /// One side of the chain.
    public enum Side: Sendable {
        case readable
        case writable
    }
}
