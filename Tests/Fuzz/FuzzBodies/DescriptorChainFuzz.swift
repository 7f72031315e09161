/// Fuzz body (issue 7): to be written.
public enum DescriptorChainFuzz {
    public static func run(_ data: UnsafeRawBufferPointer) {
    }
}
