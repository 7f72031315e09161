import Dispatch
import VhostSystem

/// A one-shot answer from a worker to the control plane, waited for with a bound.
final class CommandCompletion: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let result = Locked<UInt32>(0)

    func complete(_ value: UInt32 = 0) {
        result.withLock { $0 = value }
        semaphore.signal()
    }

    /// The answer, or nil if the worker did not answer within `milliseconds`.
    func wait(milliseconds: Int) -> UInt32? {
        switch semaphore.wait(timeout: .now() + .milliseconds(milliseconds)) {
        case .success: result.withLock { $0 }
        case .timedOut: nil
        }
    }
}
