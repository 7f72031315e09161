import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// What a device implements to be served over vhost-user (rust-vmm's `VhostUserBackend` role).
///
/// The framework owns the socket, the messages, feature negotiation, memory tables and rings; a
/// device sees only negotiated features, its configuration space and descriptor chains.
public protocol VhostUserDevice: AnyObject, Sendable {
    /// Virtio feature bits the device offers (device-specific and transport bits such as
    /// VERSION_1, INDIRECT_DESC, EVENT_IDX). The framework adds vhost-user's PROTOCOL_FEATURES bit.
    var features: VirtioFeatures { get }
    /// Number of queues the device can serve (GET_QUEUE_NUM).
    var numberOfQueues: Int { get }
    /// Largest ring size accepted in SET_VRING_NUM; the inflight area's regions hold this many
    /// descriptors.
    var maximumQueueSize: Int { get }
    /// The longest descriptor chain a driver may build, when the device lets it exceed a small
    /// ring through an indirect table (virtio-blk: seg_max + 2). A ring accepts chains as long
    /// as the larger of this and its own size.
    var maximumChainLength: Int { get }

    /// The configuration space as the driver reads it now.
    func readConfiguration() -> [UInt8]
    /// A driver write to the configuration space; false refuses it (read-only field).
    func writeConfiguration(offset: Int, bytes: [UInt8]) -> Bool
    /// Back to the power-on state (RESET_DEVICE, a new connection).
    func reset()
    /// Creates the request handler of a ring of `queueSize` entries when the ring starts; called
    /// on the queue's worker thread, which then owns it exclusively.
    func makeRequestHandler(queueIndex: Int, queueSize: Int, negotiatedFeatures: VirtioFeatures) -> any VirtqueueRequestHandler
}

/// Serves the requests of one virtqueue. Owned by one worker thread: no locking needed inside.
///
/// A request is submitted with a token; the handler completes it at once (the answer of
/// `submit`) or later, in any order, by reporting the token to `completions` when the worker
/// calls `reapCompletions` (because `completionNotifier` became readable). The framework
/// publishes used elements, keeps the inflight log and notifies the driver; the handler writes
/// only its device's bytes.
///
/// A chain is valid only until the next one is popped: a handler that keeps a request in
/// flight copies what it needs first (iovecs, the status byte's place) and keeps
/// `chain.memory` alive until it completes the request.
public protocol VirtqueueRequestHandler: AnyObject {
    /// Starts serving one request.
    func submit(_ chain: DescriptorChain, token: RequestToken) -> RequestProgress
    /// Completes at once a request the framework will not let the device serve (its ring is
    /// larger than the device accepts, or its buffers fault behind a vIOMMU, in which case the
    /// inaccessible segments are unreadable through the chain) with the device's error status,
    /// touching nothing else. Returns the bytes written, the used element's `len`.
    func fail(_ chain: DescriptorChain) -> UInt32
    /// Readable when completions wait to be reaped; nil when every request completes in `submit`.
    var completionNotifier: Int32? { get }
    /// Called after each pass over the ring: starts what `submit` queued (one system call for
    /// a batch of requests).
    func submitQueued()
    /// Reports the requests that completed since the last call to `completions`.
    func reapCompletions(into completions: CompletedRequests)
    /// Whether completions wait, when the handler can tell without a system call (the worker
    /// stops polling its ring for them).
    var hasCompletions: Bool { get }
    /// The worker is about to sleep with requests outstanding: arm the completion notifier.
    /// True when completions already wait (the worker reaps instead of sleeping).
    func prepareToSleep() -> Bool
}

extension VirtqueueRequestHandler {
    public var completionNotifier: Int32? { nil }
    public func submitQueued() {}
    public func reapCompletions(into completions: CompletedRequests) {}
    public var hasCompletions: Bool { false }
    public func prepareToSleep() -> Bool { false }
}
