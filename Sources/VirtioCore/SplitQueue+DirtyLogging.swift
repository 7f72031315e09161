import VirtioSpec

extension SplitQueue {
    /// Walks again the chain of `head`, a request still outstanding, to find the buffers it let
    /// the device write: dirty logging marks them when the request completes, after the device
    /// wrote them (as libvhost-user does), so no per-request record is kept while logging is
    /// off. The walk applies every rule `popAvailable` applies, and like it overwrites the
    /// segments of the chain popped last.
    /// - Returns: nil when `head` is not outstanding.
    /// - Throws: the walk's error, when the driver changed the chain while the device served it.
    public func walkOutstanding<Translator: DescriptorAddressTranslator>(
        head: UInt16, translator: Translator
    ) throws(VirtqueueError) -> DescriptorChain? {
        guard outstanding.contains(head) else { return nil }
        return try walkChain(head: head, translator: translator)
    }

    /// The used ring's size in bytes, `avail_event` included: what a dirty log marks at
    /// `log_guest_addr` when the ring is published.
    public var usedRingByteCount: Int { SplitRing.usedRingByteCount(queueSize: queueSize) }
}
