import Synchronization
import VhostSystem
import VhostUserBackend
import VirtioBlk
import VirtioCore
import VirtioSpec

/// A device whose requests complete later, out of order, from their own completion source: the
/// block device's handler serves each request when it is submitted, but its completion is held
/// and reported through an eventfd, newest first, once the test releases the queue's held
/// requests. What an asynchronous device does, with the timing in the test's hands.
final class DeferringDevice: VhostUserDevice, @unchecked Sendable {
    // SAFETY (Sendable): `block` is Sendable; the mutable state is behind `state`'s lock.
    let block: VirtioBlkDevice
    private let state = Locked<State>(State())

    struct State {
        var notifiers: [EventFD] = []
        var released = false
        var bogusCompletions: [UInt16] = []
    }

    init(_ block: VirtioBlkDevice) {
        self.block = block
    }

    var features: VirtioFeatures { block.features }
    var numberOfQueues: Int { block.numberOfQueues }
    var maximumQueueSize: Int { block.maximumQueueSize }
    var maximumChainLength: Int { block.maximumChainLength }
    func readConfiguration() -> [UInt8] { block.readConfiguration() }
    func writeConfiguration(offset: Int, bytes: [UInt8]) -> Bool { block.writeConfiguration(offset: offset, bytes: bytes) }
    func reset() { block.reset() }

    func makeRequestHandler(queueIndex: Int, queueSize: Int, negotiatedFeatures: VirtioFeatures) -> any VirtqueueRequestHandler {
        // An eventfd we cannot make fails the test through the handler's missing notifier.
        let notifier = try? EventFD()
        if let notifier { state.withLock { $0.notifiers.append(notifier) } }
        return Handler(device: self, notifier: notifier,
                       block: block.makeRequestHandler(queueIndex: queueIndex, queueSize: queueSize,
                                                       negotiatedFeatures: negotiatedFeatures))
    }

    /// From now on every held completion is reported: those held now at once, later ones as
    /// they come.
    func release() {
        let notifiers = state.withLock { state in
            state.released = true
            return state.notifiers
        }
        for notifier in notifiers { try? notifier.signal() }
    }

    /// Completions for these heads, which no request has, are reported with the next reap.
    func reportBogusCompletions(heads: [UInt16]) {
        state.withLock { $0.bogusCompletions += heads }
    }

    fileprivate var released: Bool { state.withLock { $0.released } }
    fileprivate func takeBogusCompletions() -> [UInt16] {
        state.withLock { state in
            defer { state.bogusCompletions = [] }
            return state.bogusCompletions
        }
    }

    final class Handler: VirtqueueRequestHandler {
        private let device: DeferringDevice
        private let notifier: EventFD?
        private let block: any VirtqueueRequestHandler
        /// Served, not yet reported; touched only on the worker's thread.
        private var held: [(token: RequestToken, writtenLength: UInt32)] = []

        init(device: DeferringDevice, notifier: EventFD?, block: any VirtqueueRequestHandler) {
            self.device = device
            self.notifier = notifier
            self.block = block
        }

        func submit(_ chain: DescriptorChain, token: RequestToken) -> RequestProgress {
            let progress = block.submit(chain, token: token)
            guard case .completed(let writtenLength) = progress else { return progress }
            held.append((token, writtenLength))
            if device.released { try? notifier?.signal() }
            return .inFlight
        }

        func fail(_ chain: DescriptorChain) -> UInt32 { block.fail(chain) }

        var completionNotifier: Int32? { notifier?.rawValue }

        func reapCompletions(into completions: CompletedRequests) {
            _ = try? notifier?.drain()
            for head in device.takeBogusCompletions() {
                completions.complete(RequestToken(head: head), writtenLength: 1)
            }
            guard device.released else { return }
            for (token, writtenLength) in held.reversed() {
                completions.complete(token, writtenLength: writtenLength)
            }
            held.removeAll()
        }
    }
}
