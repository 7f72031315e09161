#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostUserFrontEnd

extension BackEndIntegration {
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
            if geteuid() == 0 {
                // Started by root with a full bounding set (this test's own), it must hold nothing.
                for set in sets {
                    #expect(values[set] == zero, "\(set) = \(values[set] ?? "missing")")
                }
            } else {
                for set in ["CapEff", "CapPrm", "CapAmb"] {
                    #expect(values[set] == zero, "\(set) = \(values[set] ?? "missing")")
                }
            }
            #expect(daemon.logEntry(containing: "holding=none", after: 0, waitingUpTo: 1_000) != nil,
                    "\(daemon.transcript(after: 0))")
        }
    }
}
