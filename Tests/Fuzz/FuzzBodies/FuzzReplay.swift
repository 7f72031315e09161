#if canImport(Glibc)
import Glibc
#endif

/// Runs a fuzz body over the files named on the command line, as the fuzz executables do when
/// built without libFuzzer (to replay a corpus or a crash input under a debugger).
public enum FuzzReplay {
    public static func main(body: (UnsafeRawBufferPointer) -> Void) {
        for path in CommandLine.arguments.dropFirst() {
            guard let bytes = read(path) else {
                print("cannot read \(path)")
                exit(2)
            }
            bytes.withUnsafeBytes(body)
            print("ran \(path) (\(bytes.count) bytes)")
        }
    }

    /// The whole file, or nil.
    public static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return bytes
    }
}
