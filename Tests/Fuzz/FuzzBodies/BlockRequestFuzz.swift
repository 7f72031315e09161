/// Fuzz body (issue 7): to be written.
public enum BlockRequestFuzz {
    public static func run(_ data: UnsafeRawBufferPointer) {
    }
}
