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
    // SAFETY: the handles are set once in init and closed by `close` (after the queues stopped)
    // or deinit; librbd's calls on them are thread-safe.
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
    /// The most closing waits for the cluster: a few of its requests, on a cluster that answers.
    static let maximumCloseSeconds = 10
    /// How long closing may take: the request timeout, within `maximumCloseSeconds`.
    private let closeTimeoutSeconds: Int
    /// Handles of images that did not close in time (addresses), kept until the process ends.
    private static let abandoned = Locked<[UInt]>([])
    /// What `close` gave: nil while open.
    private let closeOutcome = Locked<Bool?>(nil)

    /// - Parameters:
    ///   - configuration: the ceph.conf to read (`--ceph-conf`); nil: librados' search (CEPH_CONF,
    ///     /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf).
    ///   - identity: the client name without `client.` (`--ceph-id`); nil: librados' default, admin.
    ///   - requestTimeoutSeconds: how long a request may take before it fails (0: no bound).
    public init(name: RBDImageName, configuration: String?, identity: String?, requestTimeoutSeconds: Int,
                readOnly: Bool, logger: Logger) throws(NetworkStorageError) {
        imageName = name
        self.logger = logger
        closeTimeoutSeconds = requestTimeoutSeconds > 0 ? min(requestTimeoutSeconds, Self.maximumCloseSeconds) : Self.maximumCloseSeconds
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

    deinit { _ = close() }

    /// Closes the image and lets go of the cluster (once; later calls answer the same), waiting
    /// `closeTimeoutSeconds` at most for the cluster.
    /// - Returns: whether it closed. If not, librados' threads still wait for the cluster with
    ///   the handles, which then stay allocated (and reachable) until the process ends: the
    ///   process should end without running its libraries' destructors under those threads.
    public func close() -> Bool {
        closeOutcome.withLock { outcome in
            if let outcome { return outcome }
            let closed = closeImage()
            if closed {
                if let ioContext { rados_ioctx_destroy(ioContext) }
                if let cluster { rados_shutdown(cluster) }
            } else {
                Self.abandoned.withLock { $0.append(contentsOf: [image, ioContext, cluster].map { UInt(bitPattern: $0) }) }
                logger.warning("the RBD image did not close in time (the cluster does not answer): its lock is left to expire",
                               metadata: ["seconds": "\(closeTimeoutSeconds)"])
            }
            outcome = closed
            return closed
        }
    }

    /// Closes the image (flushing what librbd holds, releasing the exclusive lock, ending the
    /// header's watch): each step a request to the cluster, so a lost one would hold it for a
    /// request timeout per step, or for ever without one. Waits `closeTimeoutSeconds` at most.
    /// - Returns: whether it closed.
    private func closeImage() -> Bool {
        guard let image else { return true }
        var completion: rbd_completion_t?
        guard rbd_aio_create_completion(nil, nil, &completion) == 0, let completion else { return false }
        guard rbd_aio_close(image, completion) == 0 else {
            rbd_aio_release(completion)
            return false
        }
        let deadline = MonotonicDeadline.now() &+ UInt64(closeTimeoutSeconds) * 1_000_000_000
        while rbd_aio_is_complete(completion) == 0 {
            // Leaves the completion to librbd's thread, which may still finish it.
            if MonotonicDeadline.now() >= deadline {
                Self.abandoned.withLock { $0.append(UInt(bitPattern: completion)) }
                return false
            }
            usleep(10_000)
        }
        rbd_aio_release(completion)
        return true
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
