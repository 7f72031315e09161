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

/// NBD disks against real servers (nbdkit, qemu-nbd): what a queue sends arrives, answers come
/// back whole, requests overlap at the server, and a server that goes away is waited for, then
/// given up on, then found again.
@Suite("NBD disks against real servers", .serialized)
struct NBDDiskTests {
    static let logger = Logger(label: "test.nbd")

    final class Scratch {
        let directory: String
        init() throws {
            var template = Array("/tmp/nbd-test-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw NBDServer.Failed(description: "mkdtemp failed") }
            directory = String(cString: made)
        }
        deinit { _ = try? FileManager.default.removeItem(atPath: directory) }
        func path(_ name: String) -> String { "\(directory)/\(name)" }
    }

    /// A buffer and its iovec, allocated once per test.
    final class Buffer {
        let bytes: UnsafeMutableRawBufferPointer
        let vector: UnsafeMutablePointer<iovec>
        init(_ count: Int, pieces: Int = 1) {
            bytes = .allocate(byteCount: count, alignment: 4096)
            bytes.initializeMemory(as: UInt8.self, repeating: 0)
            vector = .allocate(capacity: pieces)
            let piece = count / pieces
            for index in 0..<pieces {
                vector[index] = iovec(iov_base: bytes.baseAddress! + index * piece, iov_len: piece)
            }
        }
        deinit {
            bytes.deallocate()
            vector.deallocate()
        }
        func fill(_ seed: UInt8) {
            for index in 0..<bytes.count { bytes[index] = seed &+ UInt8(truncatingIfNeeded: index / 512) }
        }
        func holds(_ seed: UInt8) -> Bool {
            (0..<bytes.count).allSatisfy { bytes[$0] == seed &+ UInt8(truncatingIfNeeded: $0 / 512) }
        }
    }

    /// Reaps until `count` completions came or `seconds` passed, sleeping on the notifier.
    static func completions(of queue: any BlockStorageQueue, count: Int, seconds: Double = 20) -> [UInt64: Int32] {
        var results: [UInt64: Int32] = [:]
        let reaped = IOCompletions(capacity: 256)
        let deadline = Date().addingTimeInterval(seconds)
        var reported = 0
        while reported < count, Date() < deadline {
            reaped.removeAll()
            if queue.reap(into: reaped) == 0 {
                if !queue.prepareToSleep() {
                    var descriptor = pollfd(fd: queue.completionNotifier ?? -1, events: Int16(POLLIN), revents: 0)
                    _ = poll(&descriptor, 1, 50)
                }
                continue
            }
            for index in 0..<reaped.count {
                results[reaped[index].tag] = reaped[index].result
                reported += 1
            }
        }
        return results
    }

    /// Seconds 32 one-block reads, all in flight at once on one queue, take to complete; each
    /// must succeed.
    static func timeThirtyTwoReads(on disk: NBDDisk) throws -> TimeInterval {
        let queue = try #require(disk.makeQueue(index: 0, depth: 32))
        let buffers = (0..<32).map { _ in Buffer(4096) }
        let start = Date()
        for (index, buffer) in buffers.enumerated() {
            #expect(queue.read(buffer.vector, count: 1, length: 4096, offset: UInt64(index) * 4096, tag: UInt64(index)) == .queued)
        }
        queue.submit()
        let results = completions(of: queue, count: 32)
        let elapsed = Date().timeIntervalSince(start)
        #expect(results.count == 32 && results.values.allSatisfy { $0 == 0 })
        return elapsed
    }

    @Test("an nbdkit memory export: size and what it can do; data written in pieces reads back whole; flush, trim and zero answered")
    func roundTripOnNbdkit() throws {
        let scratch = try Scratch()
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), plugin: "memory", ["size=64M"])
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 1_000, logger: Self.logger)
        #expect(disk.size == 64 << 20)
        #expect(!disk.readOnly)
        #expect(disk.capabilities == BlockStorageCapabilities(flush: true, discard: true, writeZeroes: true))
        #expect(disk.multiConnection)
        #expect(disk.structuredReplies)
        let queue = try #require(disk.makeQueue(index: 0, depth: 8))

        let written = Buffer(64 << 10, pieces: 4)
        written.fill(7)
        #expect(queue.write(written.vector, count: 4, length: 64 << 10, offset: 1 << 20, tag: 3) == .queued)
        queue.submit()
        #expect(Self.completions(of: queue, count: 1) == [3: 0])

        let read = Buffer(64 << 10, pieces: 2)
        #expect(queue.read(read.vector, count: 2, length: 64 << 10, offset: 1 << 20, tag: 5) == .queued)
        #expect(queue.flush(tag: 6) == .queued)
        queue.submit()
        #expect(Self.completions(of: queue, count: 2) == [5: 0, 6: 0])
        #expect(read.holds(7))

        // Zeroing the first half and trimming the second: the memory plugin reads zeroes back.
        #expect(queue.writeZeroes(offset: 1 << 20, length: 32 << 10, unmap: false, tag: 0) == .queued)
        #expect(queue.discard(offset: (1 << 20) + (32 << 10), length: 32 << 10, tag: 1) == .queued)
        queue.submit()
        #expect(Self.completions(of: queue, count: 2) == [0: 0, 1: 0])
        #expect(queue.read(read.vector, count: 2, length: 64 << 10, offset: 1 << 20, tag: 2) == .queued)
        #expect(Self.completions(of: queue, count: 1) == [2: 0])
        let allZero = (0..<read.bytes.count).allSatisfy { read.bytes[$0] == 0 }
        #expect(allZero)

        // Past the end: the server's error, as a negative errno, and the queue goes on.
        #expect(queue.read(read.vector, count: 2, length: 64 << 10, offset: 64 << 20, tag: 4) == .queued)
        let pastEnd = Self.completions(of: queue, count: 1)
        #expect(pastEnd.count == 1 && (pastEnd[4] ?? 0) < 0)
    }

    @Test("a server that answers ESHUTDOWN (going away, the command not run) is left for a new connection and the request sent again, at most twice; then the queue goes on")
    func shutdownAnswerReconnects() throws {
        let scratch = try Scratch()
        let trigger = scratch.path("shutting-down")
        let log = scratch.path("nbdkit.log")
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), filters: ["log", "error"], plugin: "memory",
                                          ["size=16M", "logfile=\(log)", "error=ESHUTDOWN", "error-rate=100%", "error-file=\(trigger)"])
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 2_000, connectionsPerQueue: 1, logger: Self.logger)
        let queue = try #require(disk.makeQueue(index: 0, depth: 8))
        let buffer = Buffer(4096, pieces: 1)
        func connects() -> Int {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains(" Connect ") }.count
        }
        #expect(queue.read(buffer.vector, count: 1, length: 4096, offset: 0, tag: 1) == .queued)
        #expect(Self.completions(of: queue, count: 1) == [1: 0])
        let before = connects()

        // Every answer ESHUTDOWN: tried on a new connection once more, then EIO.
        FileManager.default.createFile(atPath: trigger, contents: nil)
        #expect(queue.read(buffer.vector, count: 1, length: 4096, offset: 0, tag: 2) == .queued)
        #expect(Self.completions(of: queue, count: 1) == [2: -EIO])
        #expect(connects() == before + 1, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")

        // The server serves again: so does the queue.
        unlink(trigger)
        #expect(queue.write(buffer.vector, count: 1, length: 4096, offset: 4096, tag: 3) == .queued)
        #expect(Self.completions(of: queue, count: 1) == [3: 0])
    }

    @Test("a URI libnbd refuses, a server that is down and a refused TLS handshake fail at open with the reason")
    func openFailuresSayWhy() throws {
        let scratch = try Scratch()
        #expect(throws: NetworkStorageError.self) {
            _ = try NBDDisk(uri: "http://example.invalid/disk", reconnectTimeoutMilliseconds: 0, logger: Self.logger)
        }
        do {
            _ = try NBDDisk(uri: "nbd+unix:///?socket=\(scratch.path("nobody.sock"))", reconnectTimeoutMilliseconds: 0,
                            logger: Self.logger)
            Issue.record("opened a socket nobody listens on")
        } catch {
            #expect("\(error)".contains("cannot connect"), "\(error)")
        }
        // TLS with a pre-shared key: the server knows alice's key; we present another.
        let keys = scratch.path("keys.psk"), wrongKeys = scratch.path("wrong.psk")
        try "alice:\(String(repeating: "ab", count: 32))\n".write(toFile: keys, atomically: true, encoding: .utf8)
        try "alice:\(String(repeating: "cd", count: 32))\n".write(toFile: wrongKeys, atomically: true, encoding: .utf8)
        let server = try NBDServer.nbdkit(socketPath: scratch.path("tls.sock"), plugin: "memory", ["size=1M"],
                                          options: ["--tls=require", "--tls-psk=\(keys)"])
        do {
            _ = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 0, logger: Self.logger)
            Issue.record("a server that requires TLS took a plain connection")
        } catch {
            #expect("\(error)".contains("cannot connect"), "\(error)")
        }
        let tlsURI = "nbds+unix://alice@/?socket=\(server.socketPath)&tls-psk-file="
        do {
            _ = try NBDDisk(uri: tlsURI + wrongKeys, reconnectTimeoutMilliseconds: 0, logger: Self.logger)
            Issue.record("a wrong pre-shared key was accepted")
        } catch {
            #expect("\(error)".contains("cannot connect"), "\(error)")
        }
        let disk = try NBDDisk(uri: tlsURI + keys, reconnectTimeoutMilliseconds: 0, logger: Self.logger)
        #expect(disk.size == 1 << 20)
    }

    @Test("requests in flight overlap at the server: 32 reads that each take 300 ms finish in far less than 32 x 300 ms")
    func requestsOverlapAtTheServer() throws {
        let scratch = try Scratch()
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), filters: ["delay"], plugin: "memory",
                                          ["size=16M", "delay-read=300ms"])
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 1_000, logger: Self.logger)
        let elapsed = try Self.timeThirtyTwoReads(on: disk)
        // One at a time would take 9.6 s; together about 0.3 s. 4 s leaves a busy machine room.
        #expect(elapsed < 4, "32 delayed reads took \(elapsed) s")
    }

    @Test("with multi-conn a queue spreads its requests over its connections: 32 reads of 300 ms on a server with 4 threads per connection take 2 rounds, not 8")
    func requestsSpreadOverConnections() throws {
        let scratch = try Scratch()
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), filters: ["delay"], plugin: "memory",
                                          ["size=16M", "delay-read=300ms"], options: ["--threads=4"])
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 1_000, logger: Self.logger)
        #expect(disk.connectionsPerQueue == NBDDisk.defaultConnectionsPerQueue)
        let elapsed = try Self.timeThirtyTwoReads(on: disk)
        // One connection: 8 rounds of 4, 2.4 s. Four: 2 rounds of 16, about 0.6 s.
        #expect(elapsed < 1.8, "32 delayed reads took \(elapsed) s")
    }

    @Test("a server killed with writes in flight and back within the timeout: every request completes once, the data is there")
    func serverBackWithinTheTimeout() throws {
        let scratch = try Scratch()
        let file = scratch.path("disk.img")
        #expect(FileManager.default.createFile(atPath: file, contents: Data(count: 8 << 20)))
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), filters: ["delay"], plugin: "file",
                                          ["file=\(file)", "delay-write=200ms"])
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 10_000, logger: Self.logger)
        let queue = try #require(disk.makeQueue(index: 0, depth: 16))
        let buffers = (0..<16).map { index -> Buffer in
            let buffer = Buffer(4096)
            buffer.fill(UInt8(index + 1))
            return buffer
        }
        for (index, buffer) in buffers.enumerated() {
            #expect(queue.write(buffer.vector, count: 1, length: 4096, offset: UInt64(index) * 65536, tag: UInt64(index)) == .queued)
        }
        queue.submit()
        usleep(50_000)
        server.kill()
        // Requests reaped meanwhile wait for the connection.
        #expect(Self.completions(of: queue, count: 16, seconds: 0.5).isEmpty)
        try server.start()
        let results = Self.completions(of: queue, count: 16)
        #expect(results.count == 16 && results.values.allSatisfy { $0 == 0 }, "\(results)")
        // What the file holds is what was written.
        let contents = try Data(contentsOf: URL(fileURLWithPath: file))
        for index in 0..<16 {
            let block = contents[(index * 65536)..<(index * 65536 + 4096)]
            let expected = (0..<4096).map { UInt8(index + 1) &+ UInt8(truncatingIfNeeded: $0 / 512) }
            #expect(Array(block) == expected, "block \(index)")
        }
    }

    @Test("a server gone past the timeout: waiting requests fail with EIO in bounded time, new ones at once, and requests succeed once it is back")
    func serverGonePastTheTimeout() throws {
        let scratch = try Scratch()
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), plugin: "memory", ["size=8M"])
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 1_000, logger: Self.logger)
        let queue = try #require(disk.makeQueue(index: 0, depth: 8))
        let buffer = Buffer(4096)
        server.kill()
        let start = Date()
        #expect(queue.read(buffer.vector, count: 1, length: 4096, offset: 0, tag: 1) == .queued)
        #expect(queue.write(buffer.vector, count: 1, length: 4096, offset: 4096, tag: 2) == .queued)
        queue.submit()
        let failed = Self.completions(of: queue, count: 2)
        let waited = Date().timeIntervalSince(start)
        #expect(failed == [1: -EIO, 2: -EIO])
        #expect(waited >= 0.9 && waited < 5, "gave up after \(waited) s")

        // Given up: the next request fails without waiting again.
        #expect(queue.read(buffer.vector, count: 1, length: 4096, offset: 0, tag: 3) == .queued)
        #expect(Self.completions(of: queue, count: 1, seconds: 0.5) == [3: -EIO])

        try server.start()
        usleep(1_100_000)  // past the pause between attempts
        #expect(queue.read(buffer.vector, count: 1, length: 4096, offset: 0, tag: 4) == .queued)
        #expect(Self.completions(of: queue, count: 1) == [4: 0])
    }

    /// qemu-nbd, not nbdkit: nbdkit 1.32 can abort (an assertion in raw_send_socket) when a
    /// client shuts its connection down while several of its threads answer on it.
    @Test("a server that hangs with the connection open (SIGSTOP): the connection is dropped after the request timeout, its requests fail with EIO after the reconnect timeout, and succeed once the server answers again")
    func hungServerIsDroppedAfterTheRequestTimeout() throws {
        let scratch = try Scratch()
        let file = scratch.path("disk.img")
        #expect(FileManager.default.createFile(atPath: file, contents: Data(count: 8 << 20)))
        let server = try NBDServer.qemuNBD(socketPath: scratch.path("nbd.sock"), file: file, shared: 4)
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 1_000, requestTimeoutMilliseconds: 500,
                               logger: Self.logger)
        let queue = try #require(disk.makeQueue(index: 0, depth: 8))
        let written = Buffer(4096)
        written.fill(7)
        #expect(queue.write(written.vector, count: 1, length: 4096, offset: 8192, tag: 0) == .queued)
        #expect(Self.completions(of: queue, count: 1) == [0: 0])

        #expect(server.pause())
        let start = Date()
        let read = Buffer(4096)
        #expect(queue.read(read.vector, count: 1, length: 4096, offset: 8192, tag: 1) == .queued)
        #expect(queue.write(written.vector, count: 1, length: 4096, offset: 16384, tag: 2) == .queued)
        queue.submit()
        // Unanswered for the request timeout (0.5 s, looked at every 0.5 s), then waiting for a
        // reconnection that cannot finish its handshake for the reconnect timeout (1 s).
        let failed = Self.completions(of: queue, count: 2)
        let waited = Date().timeIntervalSince(start)
        #expect(failed == [1: -EIO, 2: -EIO])
        #expect(waited >= 1.4 && waited < 6, "gave up after \(waited) s")

        server.resume()
        usleep(1_100_000)  // past the pause between attempts
        #expect(queue.read(read.vector, count: 1, length: 4096, offset: 8192, tag: 3) == .queued)
        #expect(Self.completions(of: queue, count: 1) == [3: 0])
        #expect(read.holds(7))
    }

    @Test("a read the server answers after 1.5 s: waited for without a request timeout or with 2 s; with 0.5 s its connection is dropped, it is sent again once, then fails with EIO")
    func answerSlowerThanTheRequestTimeoutFailsAfterOneResend() throws {
        let scratch = try Scratch()
        let server = try NBDServer.nbdkit(socketPath: scratch.path("nbd.sock"), filters: ["delay"], plugin: "memory",
                                          ["size=8M", "delay-read=1500ms"])
        for (timeout, expected) in [(0, Int32(0)), (2_000, 0), (500, -EIO)] {
            let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 1_000, requestTimeoutMilliseconds: timeout,
                                   logger: Self.logger)
            let queue = try #require(disk.makeQueue(index: 0, depth: 8))
            let read = Buffer(4096)
            #expect(queue.read(read.vector, count: 1, length: 4096, offset: 0, tag: 5) == .queued)
            #expect(Self.completions(of: queue, count: 1) == [5: expected], "request timeout \(timeout) ms")
        }
    }

    @Test("without multi-conn (qemu-nbd serving one client) the queues share one connection and each gets its own answers")
    func queuesShareOneConnectionWithoutMultiConn() throws {
        let scratch = try Scratch()
        let file = scratch.path("disk.img")
        #expect(FileManager.default.createFile(atPath: file, contents: Data(count: 4 << 20)))
        let server = try NBDServer.qemuNBD(socketPath: scratch.path("nbd.sock"), file: file)
        let disk = try NBDDisk(uri: server.uri(), reconnectTimeoutMilliseconds: 1_000, logger: Self.logger)
        #expect(!disk.multiConnection)
        let first = try #require(disk.makeQueue(index: 0, depth: 4))
        let second = try #require(disk.makeQueue(index: 1, depth: 4))
        let one = Buffer(4096), two = Buffer(4096)
        one.fill(1)
        two.fill(2)
        #expect(first.write(one.vector, count: 1, length: 4096, offset: 0, tag: 0) == .queued)
        #expect(second.write(two.vector, count: 1, length: 4096, offset: 4096, tag: 0) == .queued)
        // Only the first queue drives the socket; the second is woken by its inbox.
        #expect(Self.completions(of: first, count: 1) == [0: 0])
        #expect(Self.completions(of: second, count: 1) == [0: 0])
        let back = Buffer(8192, pieces: 2)
        #expect(second.read(back.vector, count: 2, length: 8192, offset: 0, tag: 1) == .queued)
        #expect(Self.completions(of: second, count: 1) == [1: 0])
        let matches = (0..<4096).allSatisfy { back.bytes[$0] == one.bytes[$0] && back.bytes[4096 + $0] == two.bytes[$0] }
        #expect(matches)
    }
}
