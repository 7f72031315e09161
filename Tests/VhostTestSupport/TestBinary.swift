#if canImport(Glibc)
import Glibc
#endif

/// A program the tests start, named by `make test` in the environment for the build it tests
/// (plain, AddressSanitizer, ThreadSanitizer). Never guessed: a sanitized run must not test a
/// plain build's binary because it happened to lie in .build/debug.
public enum TestBinary: String, Sendable {
    /// The `vhost-user-blk` daemon.
    case daemon = "VHOST_USER_BLK_BIN"
    /// The `vhost-user-blk-bench` front end.
    case benchFrontEnd = "VHOST_USER_BLK_BENCH_BIN"

    public struct Missing: Error, CustomStringConvertible {
        public let description: String
    }

    /// The program's path, once it is checked to be an executable file.
    /// - Throws: `Missing`, saying which variable to set and how, when it is unset or names
    ///   no executable.
    public var path: String {
        get throws(Missing) {
            let program = self == .daemon ? "vhost-user-blk" : "vhost-user-blk-bench"
            guard let value = getenv(rawValue).map({ String(cString: $0) }), !value.isEmpty else {
                throw Missing(description: "\(rawValue) is not set: `make test` sets it; by hand, "
                    + "\(rawValue)=\"$(swift build --show-bin-path)/\(program)\" swift test ...")
            }
            guard access(value, X_OK) == 0 else {
                throw Missing(description: "\(rawValue)=\(value) is not an executable file (build it first)")
            }
            return value
        }
    }
}
