#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Stops process `pid` with SIGSTOP and waits, bounded, until every thread of it is stopped.
/// kill(2) returns once the signal is queued; the process stops when one of its threads takes
/// it, and until then (on a loaded machine, milliseconds later) the others run on and still
/// answer requests: a test that sends one right after kill saw a "stopped" Ceph OSD answer it.
/// - Returns: false if the signal could not be sent or a thread still ran after `milliseconds`.
public func stopProcess(_ pid: pid_t, milliseconds: Int = 10_000) -> Bool {
    guard kill(pid, SIGSTOP) == 0 else { return false }
    let deadline = ContinuousClock.now + .milliseconds(milliseconds)
    while ContinuousClock.now < deadline {
        if allThreadsStopped(pid) { return true }
        usleep(1_000)
    }
    return allThreadsStopped(pid)
}

/// Whether every thread of `pid` is stopped (or already gone), from /proc/PID/task/*/stat.
private func allThreadsStopped(_ pid: pid_t) -> Bool {
    let tasks = "/proc/\(pid)/task"
    guard let threads = try? FileManager.default.contentsOfDirectory(atPath: tasks), !threads.isEmpty else { return false }
    for thread in threads {
        // The state follows the command name, which is in parentheses and may hold anything.
        guard let stat = try? String(contentsOfFile: "\(tasks)/\(thread)/stat", encoding: .utf8) else { continue }
        guard let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].drop(while: { $0 == " " }).first
        if !["T", "t", "Z", "X"].contains(state) { return false }
    }
    return true
}
