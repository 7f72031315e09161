import Synchronization
import VhostSystem

/// Commands queued for one worker plus the eventfd that wakes it.
final class WorkerMailbox: Sendable {
    let wakeup: EventFD
    private let pending = Locked<[WorkerCommand]>([])
    /// Set by `post`, cleared by `takeAll`: lets a polling worker notice a command with one
    /// atomic load instead of a system call.
    private let posted = Atomic<Bool>(false)

    /// Whether commands wait (a hint: `takeAll` is the truth).
    var hasCommands: Bool { posted.load(ordering: .acquiring) }

    init() throws(SystemError) {
        wakeup = try EventFD(nonBlocking: true)
    }

    func post(_ command: WorkerCommand) {
        pending.withLock { commands in
            // A newer call or error eventfd supersedes one the worker has not picked up yet: a
            // front end re-sending SET_VRING_CALL faster than the worker wakes (it may be busy
            // with a batch) must not pile up descriptors here.
            switch command {
            case .setCall:
                commands.removeAll { if case .setCall = $0 { true } else { false } }
            case .setError:
                commands.removeAll { if case .setError = $0 { true } else { false } }
            case .start, .stop, .setEnabled, .setMemory, .setIOTLB, .setDirtyLogging, .exit:
                break
            }
            commands.append(command)
        }
        posted.store(true, ordering: .releasing)
        // A full counter still wakes the worker, so the only failure mode is a closed fd.
        try? wakeup.signal()
    }

    func takeAll() -> [WorkerCommand] {
        posted.store(false, ordering: .releasing)
        return pending.withLock { commands in
            let taken = commands
            commands.removeAll(keepingCapacity: true)
            return taken
        }
    }
}
