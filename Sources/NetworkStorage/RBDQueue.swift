#if canImport(Glibc)
import Glibc
#endif
import CRBD
import StorageIO
import VhostSystem

/// One virtqueue's requests to an RBD image, on that queue's thread. Each request is one librbd
/// asynchronous call (vectored for reads and writes, so the guest's buffers are used as they
/// are); librbd runs the completion on one of its threads, which records the result in the
/// tag's slot and pushes the tag into the inbox, whose eventfd is the completion notifier.
/// librbd allocates a completion per request (its API has no other way); nothing else is.
final class RBDQueue: BlockStorageQueue {
    /// A request's slot: where its result goes, and the inbox to hand its tag to.
    struct Slot {
        var tag: UInt64 = 0
        var result: Int64 = 0
        var inbox: UnsafeMutableRawPointer?
    }

    private let disk: RBDDisk
    private let slots: UnsafeMutablePointer<Slot>
    private let depth: Int
    private let inbox: CompletionInbox

    init(disk: RBDDisk, depth: Int) throws(SystemError) {
        self.disk = disk
        self.depth = max(depth, 1)
        inbox = try CompletionInbox(capacity: self.depth, multipleProducers: true)
        slots = .allocate(capacity: self.depth)
        slots.initialize(repeating: Slot(), count: self.depth)
        let inboxAddress = Unmanaged.passUnretained(inbox).toOpaque()
        for index in 0..<self.depth {
            slots[index].tag = UInt64(index)
            slots[index].inbox = inboxAddress
        }
    }

    deinit {
        slots.deallocate()  // Slot is trivial
    }

    var completionNotifier: Int32? { inbox.wakeup.rawValue }

    func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag) { image, completion in rbd_aio_readv(image, vectors, Int32(clamping: count), offset, completion) }
    }

    func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag) { image, completion in rbd_aio_writev(image, vectors, Int32(clamping: count), offset, completion) }
    }

    func flush(tag: UInt64) -> BlockStorageStart {
        start(tag) { image, completion in rbd_aio_flush(image, completion) }
    }

    func discard(offset: UInt64, length: UInt64, tag: UInt64) -> BlockStorageStart {
        start(tag) { image, completion in rbd_aio_discard(image, offset, length, completion) }
    }

    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool, tag: UInt64) -> BlockStorageStart {
        // librbd deallocates zeroed whole objects unless asked for a thick extent.
        let flags: Int32 = unmap ? 0 : Int32(RBD_WRITE_ZEROES_FLAG_THICK_PROVISION)
        return start(tag) { image, completion in
            rbd_aio_write_zeroes(image, offset, Int(clamping: length), completion, flags, 0)
        }
    }

    func submit() {}

    var hasCompletions: Bool { !inbox.isEmpty }

    func prepareToSleep() -> Bool { hasCompletions }

    func reap(into completions: IOCompletions) -> Int {
        _ = try? inbox.wakeup.drain()
        var count = 0
        while let tag = inbox.pop() {
            let result = slots[Int(tag)].result
            completions.append(tag: tag, result: result >= 0 ? 0 : Int32(clamping: result))
            count += 1
        }
        return count
    }

    /// Creates the completion and makes the call; a call librbd refuses completes with its error.
    private func start(_ tag: UInt64, _ call: (rbd_image_t, rbd_completion_t?) -> Int32) -> BlockStorageStart {
        guard tag < UInt64(depth), let image = disk.image else { return .done(-EIO) }
        let slot = slots + Int(tag)
        var completion: rbd_completion_t?
        guard rbd_aio_create_completion(UnsafeMutableRawPointer(slot), requestCompleted, &completion) == 0 else {
            return .done(-EIO)
        }
        let result = call(image, completion)
        guard result >= 0 else {
            rbd_aio_release(completion)
            return .done(result)
        }
        return .queued
    }
}

/// librbd's completion callback, on a librbd thread: the result into the slot, the tag to the
/// queue.
private let requestCompleted: @convention(c) (rbd_completion_t?, UnsafeMutableRawPointer?) -> Void = { completion, argument in
    guard let slot = argument?.assumingMemoryBound(to: RBDQueue.Slot.self) else { return }
    slot.pointee.result = Int64(rbd_aio_get_return_value(completion))
    rbd_aio_release(completion)
    guard let inbox = slot.pointee.inbox else { return }
    Unmanaged<CompletionInbox>.fromOpaque(inbox).takeUnretainedValue().push(slot.pointee.tag, signal: true)
}
