#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VhostSystem
import VirtioCore
import VhostUserFrontEnd

extension DaemonBinaryTests {
    @Suite("Privileges")
    struct PrivilegeTests {
        @Test("the daemon binary serves with every capability dropped, bounding set included")
        func daemonServesWithoutCapabilities() throws {
            let daemon = try ChildDaemon()
            defer { daemon.stop() }
            // While a front end is attached and served: the drop happened before serving.
            let started = try StartedFrontEnd.start(daemon)
            #expect(try started.guest.write(sector: 8, pattern(count: 512, seed: 8)) == BlockGuest.statusOK)

            let sets = ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"]
            let values = Dictionary(uniqueKeysWithValues: sets.map { ($0, daemon.status($0)) })
            let zero = "0000000000000000"
            // The daemon empties its bounding set wherever it can: with CAP_SETPCAP, which it
            // inherits from this process (as root, or not). Without it only the other sets.
            let canDropBoundingSet = Self.effectiveCapabilities() & (1 << 8) != 0  // CAP_SETPCAP
            for set in canDropBoundingSet ? sets : ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
                #expect(values[set] == zero, "\(set) = \(values[set] ?? "missing")")
            }
            #expect(daemon.logEntry(containing: "holding=none", after: 0, waitingUpTo: 1_000) != nil,
                    "\(daemon.transcript(after: 0))")
        }

        /// This test process's effective capabilities (/proc/self/status CapEff).
        static func effectiveCapabilities() -> UInt64 {
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") } ?? ""
            return UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0
        }

        @Test("--sandbox: seccomp filter and no_new_privs in force, an empty root as root, still serving, clean exit")
        func sandboxedDaemonServesAndExitsCleanly() throws {
            let daemon = try ChildDaemon(extraArguments: ["--sandbox"])
            defer { daemon.stop() }
            let started = try StartedFrontEnd.start(daemon)
            let data = pattern(count: 4096, seed: 21)
            #expect(try started.guest.write(sector: 16, data) == BlockGuest.statusOK)
            let read = try started.guest.read(sector: 16, count: 4096)
            #expect(read.status == BlockGuest.statusOK && read.data == data)
            // A sanitizer build of the daemon (make sanitize) installs no filter: its runtime
            // needs ptrace and exec. Whether this is one is decided here (this test binary is of
            // the same build as the daemon make test names), and the daemon must say so.
            let sanitized = SeccompFilter.sanitizerRuntimeLinked
            #expect(daemon.logEntry(containing: sanitized ? "seccomp=not installed: sanitizer build" : "calls allowed",
                                    after: 0, waitingUpTo: 1_000) != nil, "\(daemon.transcript(after: 0))")
            #expect(daemon.status("Seccomp") == (sanitized ? "0" : "2"))
            #expect(daemon.status("NoNewPrivs") == (sanitized ? "0" : "1"))
            #expect(daemon.status("CapEff") == "0000000000000000")
            if geteuid() == 0 && !sanitized {
                // Its root is an empty tmpfs; ours is the host's.
                let root = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/root")
                #expect(root.isEmpty, "the sandboxed daemon sees \(root)")
                #expect(daemon.logEntry(containing: "mount-namespace=empty read-only root", after: 0, waitingUpTo: 1_000) != nil)
            }
            started.session.socket.shutdown()
            // SIGTERM: a clean exit, the socket file removed through the directory opened before.
            #expect(daemon.stop())
            #expect(daemon.process.terminationReason == .exit && daemon.process.terminationStatus == 0,
                    "\(daemon.process.terminationReason) \(daemon.process.terminationStatus): \(daemon.transcript(after: 0))")
            #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        }

        /// Sixteen queue workers started together, three times over: glibc's malloc opens
        /// /sys/devices/system/cpu/online once a process has more than eight arenas (and
        /// /proc/sys/vm/overcommit_memory before shrinking a thread's heap). Under the sandbox
        /// the open must fail, not kill the daemon (it did, once, in CI after a guest reboot).
        @Test("--sandbox: many queue workers coming and going do not trip the filter")
        func sandboxedDaemonSurvivesManyWorkers() throws {
            let queues = 16
            let daemon = try ChildDaemon(extraArguments: ["--sandbox", "--num-queues=\(queues)"])
            defer { daemon.stop() }
            for round in 0..<3 {
                let session = try daemon.connect()
                let negotiated = try QEMUSequence.connect(session, queueCount: queues)
                let guest = try BlockGuest(regions: [GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: 4 << 20)],
                                           queueCount: queues, eventIndex: negotiated.features.contains(.eventIndex))
                try QEMUSequence.start(session, guest: guest, features: negotiated.features)
                for queue in 0..<queues {
                    let data = pattern(count: 4096, seed: UInt64(round * queues + queue))
                    #expect(try guest.write(queue: queue, sector: UInt64(queue * 8), data) == BlockGuest.statusOK)
                }
                for queue in 0..<queues {
                    _ = try session.stopRing(index: UInt32(queue))
                }
                session.socket.shutdown()
                #expect(daemon.process.isRunning, "round \(round): \(daemon.transcript(after: 0))")
            }
            expectServesNewFrontEnd(daemon)
            #expect(daemon.process.isRunning)
        }
    }
}
