#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NetworkStorage
import StorageIO
import Testing
import VhostSystem
import VhostTestSupport

/// RBD images on a real single-node Ceph cluster (started per test, about 1.5 s): what a queue
/// writes is in the image, a snapshot is read-only and keeps its contents, and what cannot be
/// served fails at open with librados' reason.
@Suite("RBD images on a real Ceph cluster", .serialized)
struct RBDDiskTests {
    typealias Buffer = NBDDiskTests.Buffer
    static let logger = Logger(label: "test.rbd")

    @Test("writes in pieces read back whole, in the image as rbd exports it; flush, write-zeroes and discard answered; a snapshot keeps its data and is read-only")
    func roundTripAndSnapshot() throws {
        let cluster = try CephCluster()
        try cluster.rbd(["create", "--size", "16M", "rbd/disk"])
        let disk = try RBDDisk(name: try RBDImageName(parsing: "rbd/disk"), configuration: cluster.configuration,
                               identity: nil, requestTimeoutSeconds: 30, readOnly: false, logger: Self.logger)
        #expect(disk.size == 16 << 20 && !disk.readOnly)
        let queue = try #require(disk.makeQueue(index: 0, depth: 8))
        let written = Buffer(64 << 10, pieces: 4)
        written.fill(3)
        #expect(queue.write(written.vector, count: 4, length: 64 << 10, offset: 1 << 20, tag: 1) == .queued)
        #expect(queue.flush(tag: 2) == .queued)
        #expect(NBDDiskTests.completions(of: queue, count: 2) == [1: 0, 2: 0])
        let read = Buffer(64 << 10, pieces: 2)
        #expect(queue.read(read.vector, count: 2, length: 64 << 10, offset: 1 << 20, tag: 3) == .queued)
        #expect(NBDDiskTests.completions(of: queue, count: 1) == [3: 0])
        #expect(read.holds(3))

        // rbd export sees the same bytes.
        let exported = "\(cluster.directory)/export.img"
        try cluster.rbd(["export", "rbd/disk", exported])
        let contents = try Data(contentsOf: URL(fileURLWithPath: exported))
        #expect(contents.count == 16 << 20)
        let expected = (0..<(64 << 10)).map { UInt8(3) &+ UInt8(truncatingIfNeeded: $0 / 512) }
        #expect(Array(contents[(1 << 20)..<((1 << 20) + (64 << 10))]) == expected)

        // A snapshot now, then zero the range (half kept allocated, half allowed to be unmapped)
        // and discard elsewhere (a partial discard need not read back as zeroes): the snapshot
        // still has the data.
        try cluster.rbd(["snap", "create", "rbd/disk@before"])
        #expect(queue.writeZeroes(offset: 1 << 20, length: 32 << 10, unmap: false, tag: 4) == .queued)
        #expect(queue.writeZeroes(offset: (1 << 20) + (32 << 10), length: 32 << 10, unmap: true, tag: 5) == .queued)
        #expect(queue.discard(offset: 8 << 20, length: 4 << 20, tag: 7) == .queued)
        #expect(NBDDiskTests.completions(of: queue, count: 3) == [4: 0, 5: 0, 7: 0])
        #expect(queue.read(read.vector, count: 2, length: 64 << 10, offset: 1 << 20, tag: 6) == .queued)
        #expect(NBDDiskTests.completions(of: queue, count: 1) == [6: 0])
        let zeroed = (0..<read.bytes.count).allSatisfy { read.bytes[$0] == 0 }
        #expect(zeroed)

        let snapshot = try RBDDisk(name: try RBDImageName(parsing: "rbd/disk@before"), configuration: cluster.configuration,
                                   identity: "admin", requestTimeoutSeconds: 30, readOnly: false, logger: Self.logger)
        #expect(snapshot.readOnly)
        let snapshotQueue = try #require(snapshot.makeQueue(index: 0, depth: 4))
        #expect(snapshotQueue.read(read.vector, count: 2, length: 64 << 10, offset: 1 << 20, tag: 0) == .queued)
        #expect(NBDDiskTests.completions(of: snapshotQueue, count: 1) == [0: 0])
        #expect(read.holds(3))
        #expect(snapshotQueue.write(written.vector, count: 4, length: 64 << 10, offset: 0, tag: 1) == .queued)
        let refused = NBDDiskTests.completions(of: snapshotQueue, count: 1)
        #expect(refused.count == 1 && (refused[1] ?? 0) < 0, "\(refused)")
    }

    @Test("a missing pool, a missing image or snapshot, an unknown client, a cluster that is down: open fails with the reason")
    func openFailuresSayWhy() throws {
        let cluster = try CephCluster()
        try cluster.rbd(["create", "--size", "4M", "rbd/disk"])
        func failure(_ name: String, identity: String? = nil, configuration: String? = nil) -> String {
            do {
                _ = try RBDDisk(name: try RBDImageName(parsing: name), configuration: configuration ?? cluster.configuration,
                                identity: identity, requestTimeoutSeconds: 30, readOnly: false, logger: Self.logger)
                return "opened"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure("nopool/disk").contains("cannot use the Ceph pool 'nopool'"))
        #expect(failure("rbd/nodisk").contains("cannot open the RBD image 'rbd/nodisk'"))
        #expect(failure("rbd/disk@nosnap").contains("cannot open the RBD image 'rbd/disk@nosnap'"))
        // cephx: a client the cluster has no key for, with a key of its own.
        let intruderKeyring = "\(cluster.directory)/intruder.keyring"
        _ = try runProgram("/usr/bin/ceph-authtool", ["--create-keyring", intruderKeyring, "--gen-key", "-n", "client.intruder"])
        let intruderConf = "\(cluster.directory)/intruder.conf"
        let conf = try String(contentsOfFile: cluster.configuration, encoding: .utf8)
            .replacingOccurrences(of: "keyring = \(cluster.directory)/keyring", with: "keyring = \(intruderKeyring)")
        try conf.write(toFile: intruderConf, atomically: true, encoding: .utf8)
        let refused = failure("rbd/disk", identity: "intruder", configuration: intruderConf)
        #expect(refused.contains("cannot connect to the Ceph cluster"), "\(refused)")
        #expect(failure("rbd/disk", configuration: "\(cluster.directory)/missing.conf").contains("cannot read"))
        #expect(throws: NetworkStorageError.self) { _ = try RBDImageName(parsing: "rbd/disk@") }

        // Down: the monitors do not answer; the mount gives up (CEPH_ARGS shortens it here).
        let downConf = "\(cluster.directory)/down.conf"
        try conf.write(toFile: downConf, atomically: true, encoding: .utf8)
        setenv("CEPH_ARGS", "--client_mount_timeout=2", 1)
        defer { unsetenv("CEPH_ARGS") }
        let killed = try runProgram("/usr/bin/pkill", ["-f", "\(cluster.directory)/ceph.conf -i a"])
        #expect(killed.status == 0)
        let start = Date()
        let down = failure("rbd/disk", configuration: downConf)
        #expect(down.contains("cannot connect to the Ceph cluster"), "\(down)")
        #expect(Date().timeIntervalSince(start) < 30)
    }

    @Test("an OSD that stops answering with its connections open: requests fail (ETIMEDOUT) after the request timeout, not sooner and not never; once it answers again the image serves, and what the failed write carried is never half there")
    func stoppedOSDFailsRequestsAfterTheTimeout() throws {
        let cluster = try CephCluster()
        try cluster.rbd(["create", "--size", "4M", "rbd/disk"])
        let disk = try RBDDisk(name: try RBDImageName(parsing: "rbd/disk"), configuration: cluster.configuration,
                               identity: nil, requestTimeoutSeconds: 2, readOnly: false, logger: Self.logger)
        let queue = try #require(disk.makeQueue(index: 0, depth: 4))
        let block = Buffer(4096)
        block.fill(1)
        #expect(queue.write(block.vector, count: 1, length: 4096, offset: 0, tag: 0) == .queued)
        #expect(NBDDiskTests.completions(of: queue, count: 1) == [0: 0])

        try cluster.pauseOSD()
        var resumed = false
        defer { if !resumed { try? cluster.resumeOSD() } }
        let stopped = Date()
        let other = Buffer(4096)
        other.fill(2)
        #expect(queue.write(other.vector, count: 1, length: 4096, offset: 8192, tag: 1) == .queued)
        #expect(queue.read(block.vector, count: 1, length: 4096, offset: 0, tag: 2) == .queued)
        let failed = NBDDiskTests.completions(of: queue, count: 2, seconds: 30)
        let waited = Date().timeIntervalSince(stopped)
        #expect(failed == [1: -ETIMEDOUT, 2: -ETIMEDOUT], "\(failed)")
        #expect(waited >= 1.5 && waited < 15, "failed after \(waited) s")

        try cluster.resumeOSD()
        resumed = true
        let again = Buffer(4096)
        again.fill(3)
        #expect(queue.write(again.vector, count: 1, length: 4096, offset: 4096, tag: 3) == .queued)
        #expect(NBDDiskTests.completions(of: queue, count: 1) == [3: 0])
        let back = Buffer(12288, pieces: 3)
        #expect(queue.read(back.vector, count: 3, length: 12288, offset: 0, tag: 0) == .queued)
        #expect(NBDDiskTests.completions(of: queue, count: 1) == [0: 0])
        let expected = Buffer(12288)
        for (index, seed) in [UInt8(1), 3].enumerated() {
            let piece = Buffer(4096)
            piece.fill(seed)
            expected.bytes[(index * 4096)..<((index + 1) * 4096)].copyBytes(from: piece.bytes)
        }
        #expect(Array(back.bytes[0..<8192]) == Array(expected.bytes[0..<8192]))
        // The failed write may still have been done when the OSD went on (librados does not take
        // it back), but whole or not at all.
        let late = Array(back.bytes[8192..<12288])
        #expect(late == Array(other.bytes) || late.allSatisfy { $0 == 0 })
    }
}
