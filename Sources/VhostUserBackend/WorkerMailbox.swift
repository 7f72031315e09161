import Synchronization
import VhostSystem

/// Commands queued for one worker plus the eventfd that wakes it.
final class WorkerMailbox: Sendable {
    let wakeup: EventFD
    private let pending = Mutex<[WorkerCommand]>([])

    init() throws(SystemError) {
        wakeup = try EventFD(nonBlocking: true)
    }

    func post(_ command: WorkerCommand) {
        pending.withLock { $0.append(command) }
        // A full counter still wakes the worker, so the only failure mode is a closed fd.
        try? wakeup.signal()
    }

    func takeAll() -> [WorkerCommand] {
        pending.withLock { commands in
            let taken = commands
            commands.removeAll(keepingCapacity: true)
            return taken
        }
    }
}
