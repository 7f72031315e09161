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
public protocol VirtqueueRequestHandler: AnyObject {
    /// Serves one request and returns the number of bytes written into the chain's
    /// device-writable buffers (the used element's `len`).
    func handle(_ chain: DescriptorChain) -> UInt32
    /// Completes a request the framework refuses to serve (its ring is larger than the device
    /// accepts) with the device's error status, touching nothing else; returns the bytes
    /// written, as `handle` does.
    func fail(_ chain: DescriptorChain) -> UInt32
}
