// swift-tools-version:6.1
import PackageDescription

// Layers, dependencies pointing down (docs/architecture.md):
// CVhostBridge (C) → VhostSystem; VirtioSpec → VhostUserProtocol, VirtioCore (+ VhostSystem);
// those and IOMMUModel → VhostUserBackend → VirtioBlk → executables.
let package = Package(
    name: "swift-vhost-user",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vhost-user-blk", targets: ["vhost-user-blk"]),
        .executable(name: "vhost-user-blk-bench", targets: ["vhost-user-blk-bench"]),
        .library(name: "VhostUserBackend", targets: ["VhostUserBackend"]),
        .library(name: "VhostUserFrontEnd", targets: ["VhostUserFrontEnd"]),
        .library(name: "VhostUserBlkBench", targets: ["VhostUserBlkBench"]),
        // Preloaded (never linked) by make test's allocation checks; the tests reach it with dlsym.
        .library(name: "VhostAllocationCounter", type: .dynamic, targets: ["VhostAllocationCounter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // System libraries found through pkg-config; the bridge includes their headers.
        .systemLibrary(name: "CGLib", path: "CBridge/CGLib", pkgConfig: "glib-2.0",
                       providers: [.apt(["libglib2.0-dev"])]),
        .systemLibrary(name: "CCapNG", path: "CBridge/CCapNG", pkgConfig: "libcap-ng",
                       providers: [.apt(["libcap-ng-dev"])]),
        .systemLibrary(name: "CLiburing", path: "CBridge/CLiburing", pkgConfig: "liburing",
                       providers: [.apt(["liburing-dev"])]),
        .systemLibrary(name: "CZlib", path: "CBridge/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", path: "CBridge/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CNBD", path: "CBridge/CNBD", pkgConfig: "libnbd", providers: [.apt(["libnbd-dev"])]),
        // Debian's librbd-dev ships no pkg-config file: the module map names the libraries.
        .systemLibrary(name: "CRBD", path: "CBridge/CRBD", providers: [.apt(["librbd-dev"])]),
        // The thin C bridge: what Swift cannot call directly. It decides nothing.
        .target(name: "CVhostBridge", dependencies: ["CGLib", "CCapNG", "CLiburing"], path: "CBridge/CVhostBridge"),
        // Owned fds, mappings, eventfd, epoll, memfd, unix sockets with fd passing.
        // The one module that calls C: the bridge and the system libraries (GLib's main loop,
        // libcap-ng, liburing through the bridge, zlib and libzstd for compressed images).
        .target(name: "VhostSystem", dependencies: ["CVhostBridge", "CGLib", "CCapNG", "CZlib", "CZstd"]),
        // The VIRTIO specification's numbers: feature bits, the split ring's format, virtio-blk's
        // request types and status codes. Declared here once; no code that does anything.
        .target(name: "VirtioSpec"),
        // vhost-user wire format: headers, payloads, validation, reply encoding. No I/O.
        .target(name: "VhostUserProtocol", dependencies: ["VirtioSpec"]),
        // The IOMMU model: range store, IOTLB, pins, two-step IOVA mapping, I/O page table,
        // mmap cookies, reverse translation. Pure Swift, no I/O.
        .target(name: "IOMMUModel"),
        .executableTarget(name: "iommu-bench", dependencies: ["IOMMUModel"]),
        // Guest memory and split virtqueues.
        .target(name: "VirtioCore", dependencies: ["VirtioSpec", "VhostSystem"]),
        // Connection, dispatch, queue workers, GLib control plane: the back-end framework.
        .target(name: "VhostUserBackend", dependencies: [
            "VirtioSpec", "VhostSystem", "VhostUserProtocol", "VirtioCore", "IOMMUModel",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // I/O engines for storage back ends (io_uring, threads, synchronous I/O) and the
        // storage interface the device serves network disks through.
        .target(name: "StorageIO", dependencies: ["VhostSystem"]),
        // Disks beyond the host: NBD through libnbd, Ceph RBD through librbd. The one module
        // that calls them.
        .target(name: "NetworkStorage", dependencies: [
            "StorageIO", "VhostSystem", "CNBD", "CRBD", .product(name: "Logging", package: "swift-log"),
        ]),
        // The qcow2 image format: header, L1/L2 tables, refcounts, backing chains. No device or
        // protocol knowledge; the image file is untrusted input.
        .target(name: "Qcow2", dependencies: ["VhostSystem", .product(name: "Logging", package: "swift-log")]),
        // The virtio-blk device.
        .target(name: "VirtioBlk", dependencies: [
            "VirtioSpec", "VirtioCore", "VhostUserBackend", "VhostSystem", "StorageIO", "Qcow2",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // A front end that plays QEMU and the guest driver (tests, benchmarks).
        .target(name: "VhostUserFrontEnd", dependencies: ["VirtioSpec", "VhostSystem", "VhostUserProtocol", "VirtioCore"]),
        // The benchmark front end: workloads on any vhost-user-blk socket, and its command.
        .target(name: "VhostUserBlkBench", dependencies: [
            "VirtioSpec", "VhostUserFrontEnd", "VhostUserProtocol", "VirtioCore", "VhostSystem", "IOMMUModel",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ]),
        .executableTarget(name: "vhost-user-blk-bench", dependencies: [
            "VhostUserBlkBench", "VhostSystem",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "vhost-user-blk", dependencies: [
            "VirtioBlk", "StorageIO", "NetworkStorage", "VhostUserBackend", "VhostSystem",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Helpers shared by the test targets (threads, the allocation counter, test binaries).
        .target(name: "VhostTestSupport", path: "Tests/VhostTestSupport"),
        // Counts allocator calls per thread; a preloaded library, so nothing depends on it.
        .target(name: "VhostAllocationCounter", path: "Tests/VhostAllocationCounter"),
        .testTarget(name: "VhostSystemTests", dependencies: ["VhostSystem"]),
        .testTarget(name: "StorageIOTests", dependencies: ["StorageIO", "VhostSystem"]),
        .testTarget(name: "NetworkStorageTests", dependencies: [
            "NetworkStorage", "StorageIO", "VhostSystem", "VhostTestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "Qcow2Tests", dependencies: ["Qcow2", "VhostSystem", "VhostTestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "VhostUserProtocolTests", dependencies: ["VirtioSpec", "VhostUserProtocol"]),
        .testTarget(name: "VirtioCoreTests", dependencies: ["VirtioSpec", "VhostTestSupport", "VirtioCore", "VhostSystem", "VhostUserFrontEnd"]),
        .testTarget(name: "VirtioBlkTests", dependencies: ["VirtioSpec", "StorageIO", "VhostTestSupport",
            "VirtioBlk", "VirtioCore", "VhostSystem", "VhostUserFrontEnd", "VhostUserProtocol", "VhostUserBackend",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "VhostUserBackendTests", dependencies: ["VirtioSpec", "StorageIO", "VhostTestSupport",
            "VhostUserBackend", "VirtioBlk", "VirtioCore", "VhostUserFrontEnd", "VhostUserProtocol", "VhostSystem", "IOMMUModel",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "IOMMUModelTests", dependencies: [
            "IOMMUModel", "VhostTestSupport", .product(name: "PropertyBased", package: "swift-property-based"),
        ]),
        .testTarget(name: "VhostUserFrontEndTests", dependencies: ["VirtioSpec", "VhostUserFrontEnd", "VhostUserProtocol", "VhostSystem"]),
        .testTarget(name: "VhostUserBlkBenchTests", dependencies: ["VirtioSpec", "VhostUserBlkBench", "VhostUserFrontEnd", "VirtioCore"]),
        // Fuzzing (issue 7): the bodies, one executable per body (libFuzzer's entry point, or a
        // replay of files without it), and the corpora replayed in the normal suite.
        .target(name: "FuzzBodies", dependencies: [
            "VirtioSpec", "StorageIO",
            "VhostUserProtocol", "VhostUserBackend", "VirtioBlk", "VirtioCore", "IOMMUModel", "VhostSystem", "Qcow2",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/Fuzz/FuzzBodies"),
        .executableTarget(name: "fuzz-message-decoder", dependencies: ["FuzzBodies"], path: "Tests/Fuzz/fuzz-message-decoder"),
        .executableTarget(name: "fuzz-dispatch", dependencies: ["FuzzBodies"], path: "Tests/Fuzz/fuzz-dispatch"),
        .executableTarget(name: "fuzz-descriptor-chain", dependencies: ["FuzzBodies"], path: "Tests/Fuzz/fuzz-descriptor-chain"),
        .executableTarget(name: "fuzz-block-request", dependencies: ["FuzzBodies"], path: "Tests/Fuzz/fuzz-block-request"),
        .executableTarget(name: "fuzz-iommu-model", dependencies: ["FuzzBodies"], path: "Tests/Fuzz/fuzz-iommu-model"),
        .executableTarget(name: "fuzz-qcow2-image", dependencies: ["FuzzBodies"], path: "Tests/Fuzz/fuzz-qcow2-image"),
        .testTarget(name: "FuzzReplayTests", dependencies: ["FuzzBodies"]),
        .testTarget(name: "EndToEndTests", dependencies: ["VhostTestSupport", "VhostSystem", "VhostUserFrontEnd", "VhostUserProtocol", "VhostUserBlkBench"]),
    ],
    swiftLanguageModes: [.v6]
)
