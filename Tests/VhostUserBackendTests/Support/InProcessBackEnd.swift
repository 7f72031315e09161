#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import StorageIO
import Synchronization
import VhostSystem
import VhostTestSupport
import VhostUserBackend
import VhostUserFrontEnd
import VirtioBlk

/// The real back end in this process: a `ControlPlane` running its GLib loop on its own
/// thread, listening on a Unix socket in a temporary directory, serving a `VirtioBlkDevice`
/// over a sparse image file (or a device wrapping it, `serving`). Logs go to `logs`.
///
/// The control plane uses GLib's default main context, so two of them in one process would
/// share it: every test that starts one runs inside the `.serialized` `BackEndIntegration`
/// suite, one at a time.
final class InProcessBackEnd {
    static let imageSize = 64 << 20
    static let queueCount = 2
    static let queueSize = 128
    static let serial = "swift-vhost-test"

    let directory: TemporaryDirectory
    let socketPath: String
    let imagePath: String
    let image: BlockImage
    let device: VirtioBlkDevice
    let logs = LogStore()
    private let controlPlane: ControlPlane
    private let thread: TestThread
    private let finished = DoneFlag()
    private var stopped = false

    /// Control planes alive in this process; more than one means the suites are not serialized.
    private static let alive = Atomic<Int>(0)

    init(imageSize: Int = InProcessBackEnd.imageSize, queueCount: Int = InProcessBackEnd.queueCount,
         queueSize: Int = InProcessBackEnd.queueSize, readOnly: Bool = false, polling: QueuePolling = .off,
         ioEngine: IOEngineKind = IOEngineSelection.preferred, maximumConnections: Int = ControlPlane.defaultMaximumConnections,
         serving: ((VirtioBlkDevice) -> any VhostUserDevice)? = nil) throws {
        let others = Self.alive.add(1, ordering: .sequentiallyConsistent).oldValue
        guard others == 0 else {
            Self.alive.subtract(1, ordering: .sequentiallyConsistent)
            throw BackEndHarnessError.concurrentControlPlanes(others + 1)
        }
        var started = false
        defer { if !started { Self.alive.subtract(1, ordering: .sequentiallyConsistent) } }
        directory = try TemporaryDirectory()
        socketPath = directory.path("vhost-user-blk.sock")
        imagePath = directory.path("disk.img")
        try makeSparseFile(at: imagePath, size: imageSize)
        image = try BlockImage(path: imagePath, readOnly: readOnly)
        let store = logs
        let logger = Logger(label: "vhost-user-blk-test") { _ in CapturingLogHandler(store: store) }
        device = VirtioBlkDevice(image: image, numberOfQueues: queueCount, maximumQueueSize: queueSize,
                                 serial: Self.serial, ioEngine: ioEngine, logger: logger)
        let listener = try UnixSocket.listen(path: socketPath)
        controlPlane = ControlPlane(listener: listener, socketPath: socketPath, device: serving?(device) ?? device, polling: polling,
                                    maximumConnections: maximumConnections, logger: logger)
        let plane = UncheckedSendable(controlPlane)
        let finished = self.finished
        thread = try TestThread {
            plane.value.run()
            finished.set()
        }
        started = true
    }

    deinit {
        stop()
    }

    /// Connections accepted so far.
    var connectionsServed: Int { controlPlane.connectionsServed }

    /// Stops the loop and joins its thread. `g_main_loop_quit` before `g_main_loop_run` has
    /// started is lost, so quit is repeated until the loop has returned.
    func stop() {
        guard !stopped else { return }
        stopped = true
        let deadline = ContinuousClock.now + .seconds(60)
        while !finished.isSet && ContinuousClock.now < deadline {
            controlPlane.stop()
            usleepMilliseconds(10)
        }
        thread.join()
        Self.alive.subtract(1, ordering: .sequentiallyConsistent)
    }

    /// Reads `count` bytes of the image at `offset` from the host, with pread.
    func imageBytes(offset: Int, count: Int) throws -> [UInt8] {
        try readFile(imagePath, offset: offset, count: count)
    }
}

enum BackEndHarnessError: Error, CustomStringConvertible {
    case concurrentControlPlanes(Int)
    var description: String {
        switch self {
        case .concurrentControlPlanes(let count):
            "\(count) control planes at once would share GLib's default main context: run them inside BackEndIntegration"
        }
    }
}

/// A flag one thread sets and another polls.
final class DoneFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// Moves a non-Sendable value into a @Sendable closure; the test guarantees exclusive use.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A directory under /tmp, removed with everything in it when released.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        // Short: Unix socket paths are limited to 107 bytes.
        url = URL(fileURLWithPath: "/tmp").appendingPathComponent("vub-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

func makeSparseFile(at path: String, size: Int) throws {
    let descriptor = try OwnedFileDescriptor.open(path, flags: O_RDWR | O_CREAT | O_TRUNC)
    guard ftruncate(descriptor.rawValue, off_t(size)) == 0 else {
        throw SystemError(call: "ftruncate(\(path))", errno: errno)
    }
}

/// pread of `count` bytes at `offset` (short only at the end of the file).
func readFile(_ path: String, offset: Int, count: Int) throws -> [UInt8] {
    let descriptor = try OwnedFileDescriptor.open(path, flags: O_RDONLY)
    var bytes = [UInt8](repeating: 0, count: count)
    let done = bytes.withUnsafeMutableBytes { pread(descriptor.rawValue, $0.baseAddress, count, off_t(offset)) }
    guard done >= 0 else { throw SystemError(call: "pread(\(path))", errno: errno) }
    return Array(bytes.prefix(done))
}

/// pwrite of `bytes` at `offset`.
func writeFile(_ path: String, _ bytes: [UInt8], offset: Int) throws {
    let descriptor = try OwnedFileDescriptor.open(path, flags: O_RDWR)
    let done = bytes.withUnsafeBytes { pwrite(descriptor.rawValue, $0.baseAddress, bytes.count, off_t(offset)) }
    guard done == bytes.count else { throw SystemError(call: "pwrite(\(path))", errno: errno) }
}

/// Deterministic pseudo-random bytes (xorshift64), so a failure can be reproduced.
func pattern(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}
