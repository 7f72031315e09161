import VhostSystem
import VhostUserFrontEnd

/// Why a benchmark run could not start or had to stop. A back end that breaks the protocol
/// or the virtqueue rules is reported here, never trusted or trapped on.
public enum BenchError: Error, Sendable, Equatable {
    /// The workload's values do not make sense (before anything is sent).
    case invalidWorkload(String)
    /// Talking vhost-user to the back end failed.
    case protocolFailure(FrontEndError)
    /// Setting up guest memory or a ring failed.
    case guestSetup(GuestDriverError)
    /// The device cannot serve the workload (too small, read-only for writes, too few queues).
    case deviceUnsuitable(String)
    /// The back end broke the virtqueue rules while serving (a used id not in flight, more
    /// completions than requests, a ring index that moves backwards).
    case backEndMisbehaved(queue: Int, String)
    /// The back end completed nothing for `milliseconds` although requests were in flight.
    case stalled(queue: Int, milliseconds: Int)
    /// A system call failed (eventfd, thread creation).
    case system(SystemError)
}

extension BenchError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .invalidWorkload(let reason): "invalid workload: \(reason)"
        case .protocolFailure(let error): "vhost-user: \(error)"
        case .guestSetup(let error): "guest memory: \(error)"
        case .deviceUnsuitable(let reason): "device unsuitable: \(reason)"
        case .backEndMisbehaved(let queue, let reason): "back end misbehaved on queue \(queue): \(reason)"
        case .stalled(let queue, let milliseconds):
            "back end stalled: queue \(queue) completed nothing for \(milliseconds) ms with requests in flight"
        case .system(let error): "system: \(error)"
        }
    }
}
