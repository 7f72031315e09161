/// Why a network disk cannot be opened or served. One enum for the module's layer.
public enum NetworkStorageError: Error, Equatable, CustomStringConvertible {
    /// libnbd could not be set up (out of memory, an option it refuses).
    case nbdLibrary(String)
    /// The URI is not one libnbd takes (`nbd://host[:port]/export`, `nbd+unix:///export?socket=PATH`).
    case nbdInvalidURI(uri: String, reason: String)
    /// The server could not be reached or refused the handshake (down, wrong export, TLS).
    case nbdCannotConnect(uri: String, reason: String)
    /// Connecting took longer than allowed.
    case nbdConnectTimedOut(uri: String, milliseconds: Int)
    /// The export's size is not a whole number of 512-byte sectors, or is 0.
    case unusableSize(name: String, size: Int64)

    public var description: String {
        switch self {
        case .nbdLibrary(let reason): "libnbd: \(reason)"
        case .nbdInvalidURI(let uri, let reason): "'\(uri)' is not an NBD URI libnbd accepts: \(reason)"
        case .nbdCannotConnect(let uri, let reason): "cannot connect to the NBD server at '\(uri)': \(reason)"
        case .nbdConnectTimedOut(let uri, let milliseconds):
            "cannot connect to the NBD server at '\(uri)': no answer within \(milliseconds) ms"
        case .unusableSize(let name, let size): "'\(name)' is \(size) bytes, not a positive multiple of 512"
        }
    }
}
