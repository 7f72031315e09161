#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A throwaway single-node Ceph cluster (vm-images/ceph-cluster.sh: a monitor, a manager and
/// one memstore OSD with cephx, pool "rbd"), stopped and removed when the value goes away.
public final class CephCluster {
    public let directory: String
    /// Its ceph.conf (the admin keyring is named in it).
    public let configuration: String

    public struct Failed: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("vm-images/ceph-cluster.sh").path
    }

    public init() throws {
        directory = "/tmp/ceph-test-\(UUID().uuidString.prefix(8))"
        let started = Self.runScript("start", directory)
        guard started.status == 0, let conf = started.output.split(separator: "\n").last.map(String.init),
              conf.hasSuffix("ceph.conf") else {
            _ = Self.runScript("stop", directory)
            throw Failed(description: "the Ceph cluster did not start: \(started.output)")
        }
        configuration = conf
    }

    deinit { _ = Self.runScript("stop", directory) }

    /// The script through system(3), its output through a file: with Foundation's Process the
    /// test hung in waitUntilExit once the script's daemons had forked away from it.
    private static func runScript(_ command: String, _ directory: String) -> (status: Int32, output: String) {
        let output = "\(directory).\(command).out"
        let status = system("'\(script)' \(command) '\(directory)' > '\(output)' 2>&1 < /dev/null")
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        unlink(output)
        return (status, text)
    }

    /// Stops (SIGSTOP) or continues (SIGCONT) the OSD: a cluster that keeps its connections and
    /// answers nothing, as behind a network that drops packets.
    /// Returns once every thread of the OSD is stopped (`stopProcess`).
    public func pauseOSD() throws {
        let pid = try osdProcess()
        guard stopProcess(pid) else { throw Failed(description: "cannot stop the OSD (pid \(pid))") }
    }

    public func resumeOSD() throws {
        let pid = try osdProcess()
        guard kill(pid, SIGCONT) == 0 else { throw Failed(description: "cannot continue the OSD (pid \(pid))") }
    }

    private func osdProcess() throws -> pid_t {
        let text = try String(contentsOfFile: "\(directory)/run/osd.0.pid", encoding: .utf8)
        guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw Failed(description: "no OSD process (pid file: '\(text)')")
        }
        return pid
    }

    /// Runs the `rbd` tool against the cluster; its output, or a failure with it.
    @discardableResult
    public func rbd(_ arguments: [String]) throws -> String {
        let finished = try runProgram("/usr/bin/rbd", ["-c", configuration] + arguments)
        guard finished.status == 0 else { throw Failed(description: "rbd \(arguments.joined(separator: " ")): \(finished.output)") }
        return finished.output
    }
}
