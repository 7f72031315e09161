/// Fuzz body (issue 7): to be written.
public enum DispatchFuzz {
    public static func run(_ data: UnsafeRawBufferPointer) {
    }
}
