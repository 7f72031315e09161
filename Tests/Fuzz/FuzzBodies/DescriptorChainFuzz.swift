#if canImport(Glibc)
import Glibc
#endif
import VirtioCore
import VirtioSpec

/// Fuzz body: `SplitQueue.popAvailable` over a guest whose memory the input fills — descriptor
/// table, available ring, indirect tables, everything (see `FuzzGuestMemory` for the regions).
///
/// Input: the queue (`QueueSetup`, 11 bytes: size ≤ 256, features, chain and segment limits,
/// ring addresses inside one region each, next available index), then the descriptor table
/// (16·N bytes), then the available ring (6 + 2·N bytes), both written where the setup put them,
/// then the rest of the input, repeated over all of guest memory beneath them (where indirect
/// tables and buffers point). The body pops until the queue is empty or broken, then completes
/// what it popped.
///
/// Properties checked, beyond "never traps":
/// - every pop agrees with `ReferenceWalker` — empty, the same error, or the same head and the
///   exact segments (guest-physical address, length, direction, in order);
/// - every segment lies inside one region's mapping; the byte counts add up; the chain's copies,
///   iovecs and status byte pointer match its segments and the guest's bytes;
/// - no more chains than avail->idx moved, `nextAvailableIndex` one further per chain and not
///   moved by an error; once broken the queue stays broken with the same error and serves nothing;
/// - walking writes nothing to guest memory; completing writes exactly the used elements and
///   used->idx; the first notification decision follows EVENT_IDX / NO_INTERRUPT.
public enum DescriptorChainFuzz {
    /// Everything made once per process: guest memory and scratch space.
    ///
    /// SAFETY (nonisolated(unsafe)): libFuzzer calls the body on one thread, and the corpus replay
    /// runs one body's inputs one after another; no other body uses this instance.
    nonisolated(unsafe) static let workspace = Workspace()

    public static func run(_ data: UnsafeRawBufferPointer) {
        var input = FuzzInput(data)
        let setup = QueueSetup(&input)
        let guest = workspace.guest
        let table = input.bytes(upTo: SplitRing.descriptorTableByteCount(queueSize: setup.queueSize))
        let available = input.bytes(upTo: SplitRing.availableRingByteCount(queueSize: setup.queueSize))
        guest.fill(repeating: input.bytes(upTo: FuzzGuestMemory.byteCount))
        guest.write(table, at: setup.descriptorTable)
        guest.write(available, at: setup.availableRing)

        let layout: SplitQueue.Layout
        do {
            layout = try SplitQueue.Layout.translate(
                queueSize: setup.queueSize, descriptorTable: GuestPhysicalAddress(setup.descriptorTable),
                availableRing: GuestPhysicalAddress(setup.availableRing), usedRing: GuestPhysicalAddress(setup.usedRing),
                memory: guest.memory)
        } catch {
            fatalError("rings placed aligned inside one region were refused: \(error)")
        }
        var queue = SplitQueue(layout: layout, features: setup.features, nextAvailableIndex: setup.nextAvailableIndex,
                               maximumSegments: setup.maximumSegments, maximumChainLength: setup.maximumChainLength)
        let model = ReferenceWalker(guest: guest, setup: setup)
        if queue.maximumChainLength != model.chainLimit || queue.maximumSegments != model.segmentLimit {
            fatalError("queue limits \(queue.maximumChainLength) chain / \(queue.maximumSegments) segments, expected \(model.chainLimit) / \(model.segmentLimit)")
        }
        guard let firstUsedIndex = guest.load(UInt16.self, at: setup.usedRing + 2) else {
            fatalError("used->idx is outside guest memory")
        }

        guest.takeSnapshot()
        let completed = popUntilEmptyOrBroken(&queue, model: model)
        if let offset = guest.firstDifferenceFromSnapshot() {
            fatalError("walking the ring changed guest memory at file offset \(offset)")
        }
        complete(completed, on: &queue, setup: setup, firstUsedIndex: firstUsedIndex)
        // Read after completing: the used ring may overlap the available ring's flags.
        guard let availableFlags = guest.load(UInt16.self, at: setup.availableRing) else {
            fatalError("avail->flags is outside guest memory")
        }
        // The first decision always notifies with EVENT_IDX; without it, unless NO_INTERRUPT.
        let expectNotification = setup.features.contains(.eventIndex) || availableFlags & 1 == 0
        if queue.needsNotification() != expectNotification {
            fatalError("first notification decision \(!expectNotification), expected \(expectNotification)")
        }
    }

    /// Pops and checks chains until the model says the ring is empty or broken; returns the
    /// used elements to push (head, bytes written).
    private static func popUntilEmptyOrBroken(_ queue: inout SplitQueue, model: ReferenceWalker) -> [(UInt16, UInt32)] {
        let outstanding = model.publishedIndex &- queue.nextAvailableIndex
        var completed: [(UInt16, UInt32)] = []
        while true {
            let expected = model.pop(next: queue.nextAvailableIndex)
            let before = queue.nextAvailableIndex
            do throws(VirtqueueError) {
                guard let chain = try queue.popAvailable(memory: workspace.guest.memory) else {
                    if expected != .empty { fatalError("popped nothing, expected \(expected)") }
                    if queue.isBroken || queue.nextAvailableIndex != before { fatalError("an empty pop changed the queue") }
                    return completed
                }
                if completed.count >= Int(outstanding) || Int(outstanding) > queue.queueSize {
                    fatalError("chain \(completed.count + 1) popped after avail->idx moved by \(outstanding)")
                }
                if queue.nextAvailableIndex != before &+ 1 {
                    fatalError("nextAvailableIndex went from \(before) to \(queue.nextAvailableIndex) for one chain")
                }
                check(chain, expected: expected)
                completed.append((chain.headIndex, UInt32(truncatingIfNeeded: chain.writableByteCount)))
            } catch {
                if expected != .broken(error) { fatalError("pop threw \(error), expected \(expected)") }
                expectStaysBroken(&queue, by: error, at: before)
                return completed
            }
        }
    }

    /// A broken queue keeps its reason and its index, and every later pop or discard throws the
    /// same error.
    private static func expectStaysBroken(_ queue: inout SplitQueue, by error: VirtqueueError, at index: UInt16) {
        guard error.consequence == .queueBroken, queue.brokenReason == error, queue.nextAvailableIndex == index else {
            fatalError("after \(error): broken \(String(describing: queue.brokenReason)), next index \(queue.nextAvailableIndex) (was \(index))")
        }
        for _ in 0..<2 {
            do throws(VirtqueueError) {
                let chain = try queue.popAvailable(memory: workspace.guest.memory)
                fatalError("a queue broken by \(error) served \(String(describing: chain?.headIndex))")
            } catch let again {
                if again != error { fatalError("a queue broken by \(error) now throws \(again)") }
            }
        }
        do throws(VirtqueueError) {
            let head = try queue.discardAvailable()
            fatalError("a queue broken by \(error) discarded \(String(describing: head))")
        } catch let again {
            if again != error { fatalError("a queue broken by \(error) now throws \(again) on discard") }
        }
        if queue.nextAvailableIndex != index { fatalError("a broken queue moved its next index") }
    }

    /// Pushes and publishes the used elements and checks they are exactly where the guest reads
    /// them.
    private static func complete(_ completed: [(UInt16, UInt32)], on queue: inout SplitQueue, setup: QueueSetup,
                                 firstUsedIndex: UInt16) {
        for (head, written) in completed {
            queue.pushUsed(head: head, writtenLength: written)
        }
        queue.publishUsed()
        let guest = workspace.guest
        let usedIndex = firstUsedIndex &+ UInt16(truncatingIfNeeded: completed.count)
        guard guest.load(UInt16.self, at: setup.usedRing + 2) == usedIndex, queue.usedIndex == usedIndex else {
            fatalError("used->idx is not \(usedIndex) after \(completed.count) completions")
        }
        for (number, (head, written)) in completed.enumerated() {
            let slot = (Int(firstUsedIndex) + number) % setup.queueSize
            let element = setup.usedRing + 4 + 8 * UInt64(slot)
            guard guest.load(UInt32.self, at: element) == UInt32(head), guest.load(UInt32.self, at: element + 4) == written else {
                fatalError("used element \(number) in slot \(slot) is not (\(head), \(written))")
            }
        }
    }
}
