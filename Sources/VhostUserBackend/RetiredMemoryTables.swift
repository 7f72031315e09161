import VirtioCore

/// Memory tables a worker replaced while requests submitted under them were still in flight:
/// each is kept (so its regions stay mapped) until those requests complete, and only then is
/// the change answered. Meanwhile the worker serves new requests through the new table: a
/// memory-table change stalls no queue, and the front end is told the old regions are free
/// only once no request uses them.
///
/// Requests are counted per table (an epoch): a request going in flight notes the current
/// epoch in its head's slot (one store, nothing allocated). Tables are answered in the order
/// they were replaced, so a region removed by a later change but also present in an older
/// table is not released while a request of the older table still uses it.
struct RetiredMemoryTables {
    private struct Retired {
        let memory: GuestMemory
        let epoch: UInt32
        var remaining: Int
        let completion: CommandCompletion
    }

    private var epochOfHead: [UInt32] = []
    private var epoch: UInt32 = 0
    /// Requests in flight under the current table.
    private var inFlight = 0
    private var retired: [Retired] = []

    /// Tables waiting for their requests.
    var waitingCount: Int { retired.count }

    /// A ring of `queueSize` starts (nothing is in flight).
    mutating func prepare(queueSize: Int) {
        epochOfHead = Array(repeating: 0, count: queueSize)
        inFlight = 0
    }

    /// The request of `head` went in flight under the current table.
    mutating func submitted(head: UInt16) {
        guard Int(head) < epochOfHead.count else { return }
        epochOfHead[Int(head)] = epoch
        inFlight += 1
    }

    /// The in-flight request of `head` completed: answers the tables no request uses any more.
    mutating func completed(head: UInt16) {
        guard Int(head) < epochOfHead.count else { return }
        let requestEpoch = epochOfHead[Int(head)]
        if requestEpoch == epoch {
            inFlight = max(inFlight - 1, 0)
            return
        }
        guard let index = retired.firstIndex(where: { $0.epoch == requestEpoch }) else { return }
        retired[index].remaining -= 1
        while let remaining = retired.first?.remaining, remaining <= 0 {
            // The table goes with this statement; the front end hears after its regions are unmapped.
            let completion = retired.removeFirst().completion
            completion.complete()
        }
    }

    /// `memory` was just replaced. If a request of it (or of a table before it) is in flight,
    /// keeps it and answers `completion` once they have completed; returns nil. Otherwise
    /// returns `completion` for the caller to answer once it has let go of `memory`, so the
    /// front end hears only after the regions are unmapped.
    mutating func retire(_ memory: GuestMemory, answering completion: CommandCompletion) -> CommandCompletion? {
        guard inFlight > 0 || !retired.isEmpty else { return completion }
        retired.append(Retired(memory: memory, epoch: epoch, remaining: inFlight, completion: completion))
        epoch &+= 1
        inFlight = 0
        return nil
    }
}
