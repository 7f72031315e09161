/// Fuzz body (issue 7): to be written.
public enum IOMMUModelFuzz {
    public static func run(_ data: UnsafeRawBufferPointer) {
    }
}
