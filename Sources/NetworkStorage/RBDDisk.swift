#if canImport(Glibc)
import Glibc
#endif
import CRBD
import Logging
import StorageIO
import VhostSystem

/// A Ceph RBD image (`--blk-rbd=POOL/IMAGE[@SNAPSHOT]`), through librbd: one cluster
/// connection and one open image for the daemon, shared by every queue (librbd is thread-safe;
/// one open image keeps the exclusive lock in one place). A snapshot is served read-only.
///
/// Opening connects within the mount timeout (10 s: librados' default is 300), so a cluster
/// that is down, a refused key, a missing pool or image fail at start with librados' reason.
/// Requests (opening the image's included) are bounded by the request timeout
/// (`rados_osd_op_timeout`): librados resends them as the cluster changes until then, and
/// fails them with ETIMEDOUT after; without it a lost OSD holds them for ever.
public final class RBDDisk: BlockStorage, @unchecked Sendable {
    // SAFETY: the handles are set once in init and closed in deinit; librbd's calls on them are
    // thread-safe.
    private let cluster: rados_t?
    private let ioContext: rados_ioctx_t?
    let image: rbd_image_t?
    public let imageName: RBDImageName
    public let size: UInt64
    public let readOnly: Bool
    public let capabilities = BlockStorageCapabilities(flush: true, discard: true, writeZeroes: true)
    private let logger: Logger

    public var name: String { "rbd:\(imageName)" }

    /// Seconds librados may take to reach the monitors and authenticate.
    public static let mountTimeoutSeconds = 10

    /// - Parameters:
    ///   - configuration: the ceph.conf to read (`--ceph-conf`); nil: librados' search (CEPH_CONF,
    ///     /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf).
    ///   - identity: the client name without `client.` (`--ceph-id`); nil: librados' default, admin.
    ///   - requestTimeoutSeconds: how long a request may take before it fails (0: no bound).
    public init(name: RBDImageName, configuration: String?, identity: String?, requestTimeoutSeconds: Int,
                readOnly: Bool, logger: Logger) throws(NetworkStorageError) {
        imageName = name
        self.logger = logger
        var cluster: rados_t?
        var result = rados_create(&cluster, identity)
        guard result == 0, let cluster else { throw .rbdLibrary(Self.reason(result)) }
        result = rados_conf_read_file(cluster, configuration)
        guard result == 0 else {
            rados_shutdown(cluster)
            throw .rbdLibrary("cannot read \(configuration ?? "the default ceph.conf"): \(Self.reason(result))")
        }
        // Our bounds first, so CEPH_ARGS can still change them.
        _ = rados_conf_set(cluster, "client_mount_timeout", "\(Self.mountTimeoutSeconds)")
        _ = rados_conf_set(cluster, "rados_osd_op_timeout", "\(max(requestTimeoutSeconds, 0))")
        _ = rados_conf_parse_env(cluster, nil)
        result = rados_connect(cluster)
        guard result == 0 else {
            rados_shutdown(cluster)
            throw .rbdCannotConnect(reason: Self.reason(result))
        }
        var ioContext: rados_ioctx_t?
        result = rados_ioctx_create(cluster, name.pool, &ioContext)
        guard result == 0, let ioContext else {
            rados_shutdown(cluster)
            throw .rbdNoPool(pool: name.pool, reason: Self.reason(result))
        }
        var image: rbd_image_t?
        let writable = !readOnly && name.snapshot == nil
        result = writable ? rbd_open(ioContext, name.image, &image, nil)
            : rbd_open_read_only(ioContext, name.image, &image, name.snapshot)
        guard result == 0, let image else {
            rados_ioctx_destroy(ioContext)
            rados_shutdown(cluster)
            throw .rbdCannotOpenImage(name: "\(name)", reason: Self.reason(result))
        }
        var imageSize: UInt64 = 0
        result = rbd_get_size(image, &imageSize)
        guard result == 0, imageSize > 0, imageSize % 512 == 0 else {
            rbd_close(image)
            rados_ioctx_destroy(ioContext)
            rados_shutdown(cluster)
            if result != 0 { throw .rbdCannotOpenImage(name: "\(name)", reason: Self.reason(result)) }
            throw .unusableSize(name: "\(name)", size: Int64(clamping: imageSize))
        }
        self.cluster = cluster
        self.ioContext = ioContext
        self.image = image
        size = imageSize
        self.readOnly = !writable
    }

    deinit {
        if let image { rbd_close(image) }
        if let ioContext { rados_ioctx_destroy(ioContext) }
        if let cluster { rados_shutdown(cluster) }
    }

    public func makeQueue(index: Int, depth: Int) -> (any BlockStorageQueue)? {
        do {
            return try RBDQueue(disk: self, depth: depth)
        } catch {
            logger.error("a queue's RBD completion eventfd cannot be set up", metadata: ["queue": "\(index)", "error": "\(error)"])
            return nil
        }
    }

    /// librados answers -errno.
    static func reason(_ result: Int32) -> String {
        "\(String(cString: strerror(-result))) (errno \(-result))"
    }
}
