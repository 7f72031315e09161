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
    /// `--blk-rbd` is not POOL/IMAGE[@SNAPSHOT].
    case rbdInvalidName(String)
    /// The cluster could not be reached or refused us (monitors down, wrong id or key).
    case rbdCannotConnect(reason: String)
    /// The pool does not exist (or we may not use it).
    case rbdNoPool(pool: String, reason: String)
    /// The image or its snapshot does not exist, or cannot be opened.
    case rbdCannotOpenImage(name: String, reason: String)
    /// librados refused to start (configuration file, out of memory).
    case rbdLibrary(String)
    /// The export's size is not a whole number of 512-byte sectors, or is 0.
    case unusableSize(name: String, size: Int64)

    public var description: String {
        switch self {
        case .nbdLibrary(let reason): "libnbd: \(reason)"
        case .nbdInvalidURI(let uri, let reason): "'\(uri)' is not an NBD URI libnbd accepts: \(reason)"
        case .nbdCannotConnect(let uri, let reason): "cannot connect to the NBD server at '\(uri)': \(reason)"
        case .nbdConnectTimedOut(let uri, let milliseconds):
            "cannot connect to the NBD server at '\(uri)': no answer within \(milliseconds) ms"
        case .rbdInvalidName(let name): "'\(name)' is not POOL/IMAGE or POOL/IMAGE@SNAPSHOT"
        case .rbdCannotConnect(let reason): "cannot connect to the Ceph cluster: \(reason)"
        case .rbdNoPool(let pool, let reason): "cannot use the Ceph pool '\(pool)': \(reason)"
        case .rbdCannotOpenImage(let name, let reason): "cannot open the RBD image '\(name)': \(reason)"
        case .rbdLibrary(let reason): "librados: \(reason)"
        case .unusableSize(let name, let size): "'\(name)' is \(size) bytes, not a positive multiple of 512"
        }
    }
}
