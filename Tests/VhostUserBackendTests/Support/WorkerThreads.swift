#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol

/// Queue worker threads seen from /proc, so tests wait on what a worker is doing instead of
/// sleeping and hoping: a worker is named "vqN" (its queue) and, with nothing to do, sleeps in
/// epoll_wait on its kick eventfd and mailbox. Once it sleeps there, nothing but a kick, a
/// command or a pending MISS's deadline wakes it.
enum WorkerThreads {
    /// The /proc directory of the worker thread of `queue` in process `pid` (nil: this one).
    private static func task(queue: Int, pid: Int32?) -> String? {
        let tasks = "/proc/\(pid.map(String.init) ?? "self")/task"
        for task in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
            let name = (try? String(contentsOfFile: "\(tasks)/\(task)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if name == "vq\(queue)" { return "\(tasks)/\(task)" }
        }
        return nil
    }

    /// Whether the worker of `queue` in process `pid` (nil: this one) sleeps in epoll_wait.
    static func isSleepingInEpoll(queue: Int, pid: Int32? = nil) -> Bool {
        guard let task = task(queue: queue, pid: pid),
              let channel = try? String(contentsOfFile: "\(task)/wchan", encoding: .utf8) else { return false }
        return channel.contains("epoll_wait") || channel.contains("ep_poll")
    }

    /// Waits, bounded by `milliseconds`, until the worker of `queue` sleeps in epoll_wait.
    @discardableResult
    static func waitUntilSleepingInEpoll(queue: Int, pid: Int32? = nil, milliseconds: Int = 10_000) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while ContinuousClock.now < deadline {
            if isSleepingInEpoll(queue: queue, pid: pid) { return true }
            usleepMilliseconds(1)
        }
        return false
    }

    /// Waits, bounded, until the worker has taken `kick`'s notification (the eventfd no longer
    /// readable: the worker drains it when it wakes) and gone back to sleep in epoll_wait: by
    /// then it has looked at its ring for that kick.
    static func waitUntilKickTaken(_ kick: Int32, queue: Int, pid: Int32? = nil, milliseconds: Int = 10_000) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while ContinuousClock.now < deadline {
            if !waitReadable(kick, milliseconds: 0), isSleepingInEpoll(queue: queue, pid: pid) { return true }
            usleepMilliseconds(1)
        }
        return false
    }

    /// The worker thread's voluntary context switches (each sleep is one), nil if it is gone.
    static func sleeps(queue: Int, pid: Int32? = nil) -> Int? {
        guard let task = task(queue: queue, pid: pid),
              let status = try? String(contentsOfFile: "\(task)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("voluntary_ctxt_switches:") })
        else { return nil }
        return Int(line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "")
    }

    /// Wakes the worker of `queue` with `wake` (something that posts it a command, such as
    /// SET_VRING_CALL) and waits, bounded, until it has slept again: one full turn of its loop,
    /// in which epoll reported every descriptor it watches that was ready. A kick eventfd still
    /// readable afterwards is one the worker no longer watches.
    static func turn(queue: Int, pid: Int32? = nil, milliseconds: Int = 10_000, wake: () throws -> Void) rethrows -> Bool {
        guard let before = sleeps(queue: queue, pid: pid) else { return false }
        try wake()
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        while ContinuousClock.now < deadline {
            if let now = sleeps(queue: queue, pid: pid), now > before, isSleepingInEpoll(queue: queue, pid: pid) { return true }
            usleepMilliseconds(1)
        }
        return false
    }

    /// `turn`, the worker woken by SET_VRING_CALL with the ring's own call eventfd (which
    /// changes nothing) and GET_FEATURES after it (its reply: the command has been posted).
    static func turn(queue: Int, session: FrontEndSession, call: EventFD, pid: Int32? = nil) throws -> Bool {
        try turn(queue: queue, pid: pid) {
            try session.send(.setVringCall(VringFileIndex(index: UInt32(queue), hasFileDescriptor: true)),
                             descriptors: [call.rawValue])
            _ = try session.send(.getFeatures)
        }
    }
}
