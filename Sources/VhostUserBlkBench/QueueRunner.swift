#if canImport(Glibc)
import Glibc
#endif
import Histogram
import VhostSystem
import VirtioSpec

/// Drives one queue for a run, on its own thread: keeps `queueDepth` requests in flight,
/// resubmitting each slot as soon as it completes, records latencies, checks statuses and,
/// in verify mode, the bytes read back. Nothing on this path allocates.
final class QueueRunner: @unchecked Sendable {  // owned by its thread during `run`, read after the join
    private enum Phase { case measure, verifyWrite, verifyRead }

    let queue: BenchQueue
    let workload: Workload
    let progress = QueueProgress()
    /// How long a queue with requests in flight may see no completion before the run fails.
    let stallMilliseconds: Int
    private let blocks: UInt64
    private let sectorsPerBlock: UInt64
    private let quota: Int?
    private var random: UInt64
    private var sequentialNext: UInt64
    private let stripeStart: UInt64
    private let stripeBlocks: UInt64
    private var slotBlock: [UInt64]
    private var slotType: [BlockRequestType]
    private var slotSubmitted: [UInt64]
    private var issued = 0
    private(set) var result = QueueResult()

    init(queue: BenchQueue, workload: Workload, spanBytes: UInt64, stallMilliseconds: Int) {
        self.queue = queue
        self.stallMilliseconds = stallMilliseconds
        self.workload = workload
        let queueIndex = UInt64(queue.index)
        let queueCount = UInt64(workload.queueCount)
        blocks = spanBytes / UInt64(workload.blockSize)
        sectorsPerBlock = UInt64(workload.blockSize / 512)
        if case .requests(let total) = workload.limit {
            quota = total / workload.queueCount + (queue.index < total % workload.queueCount ? 1 : 0)
        } else {
            quota = nil
        }
        random = (workload.seed &+ queueIndex &* 0x9E37_79B9_7F4A_7C15) | 1
        stripeBlocks = max(blocks / queueCount, 1)
        stripeStart = min(queueIndex * stripeBlocks, blocks - 1)
        sequentialNext = 0
        slotBlock = [UInt64](repeating: 0, count: workload.queueDepth)
        slotType = [BlockRequestType](repeating: .read, count: workload.queueDepth)
        slotSubmitted = [UInt64](repeating: 0, count: workload.queueDepth)
    }

    /// Runs until the limit (or the stop request), then completes what is in flight.
    func run() {
        do {
            let phases: [Phase] = workload.verify ? (workload.verifyOnly ? [.verifyRead] : [.verifyWrite, .verifyRead]) : [.measure]
            for phase in phases {
                try drive(phase)
            }
        } catch {
            result.error = error
        }
        progress.completed.store(result.reads + result.writes, ordering: .relaxed)
    }

    private func drive(_ phase: Phase) throws(BenchError) {
        issued = 0
        if workload.completion == .polling { queue.disableCalls() }
        for slot in 0..<workload.queueDepth {
            guard submitNext(slot: slot, phase: phase) else { break }
        }
        queue.publishAndKick()
        var idleSince: UInt64 = 0
        var spins = 0
        while queue.inFlightCount > 0 {
            let harvested = try queue.harvest { slot, _ in
                complete(slot: slot, phase: phase)
                _ = submitNext(slot: slot, phase: phase)
            }
            if harvested > 0 {
                queue.publishAndKick()
                progress.completed.store(result.reads + result.writes, ordering: .relaxed)
                idleSince = 0
                continue
            }
            if workload.completion == .polling {
                spins += 1
                if spins & 0x3FF != 0 { continue }
            }
            let now = MonotonicDeadline.now()
            if idleSince == 0 {
                idleSince = now
            } else if now - idleSince > UInt64(stallMilliseconds) * 1_000_000 {
                throw .stalled(queue: queue.index, milliseconds: stallMilliseconds)
            }
            if workload.completion == .eventfd {
                if queue.enableCalls() { continue }
                var descriptor = pollfd(fd: queue.call.rawValue, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, 100)
                _ = try? queue.call.drain()
            }
        }
    }

    /// Puts the next request of `phase` in `slot`; false when the phase has no more.
    private func submitNext(slot: Int, phase: Phase) -> Bool {
        let block: UInt64
        let type: BlockRequestType
        switch phase {
        case .measure:
            if let quota {
                guard issued < quota else { return false }
            } else if progress.stopRequested.load(ordering: .relaxed) {
                return false
            }
            let percent = workload.mix.readPercent
            type = percent == 100 || (percent > 0 && Int(nextRandom() % 100) < percent) ? .read : .write
            if workload.pattern == .random {
                block = nextRandom() % blocks
            } else {
                block = stripeStart + sequentialNext
                sequentialNext = sequentialNext + 1 == stripeBlocks ? 0 : sequentialNext + 1
            }
        case .verifyWrite, .verifyRead:
            block = UInt64(queue.index) + UInt64(issued) * UInt64(workload.queueCount)
            guard block < blocks else { return false }
            type = phase == .verifyWrite ? .write : .read
            if type == .write {
                VerifyPattern.fill(queue.buffer(slot), count: workload.blockSize, seed: workload.seed, block: block)
            } else {
                // The slot may still hold this very block's pattern from the write phase: a
                // back end that returned without reading must not pass.
                queue.buffer(slot).initializeMemory(as: UInt8.self, repeating: 0xA5, count: workload.blockSize)
            }
        }
        issued += 1
        slotBlock[slot] = block
        slotType[slot] = type
        slotSubmitted[slot] = MonotonicDeadline.now()
        queue.submit(slot: slot, type: type, sector: block * sectorsPerBlock)
        return true
    }

    private func complete(slot: Int, phase: Phase) {
        _ = result.latency.record(MonotonicDeadline.now() &- slotSubmitted[slot])
        if slotType[slot] == .read { result.reads += 1 } else { result.writes += 1 }
        result.bytes += UInt64(workload.blockSize)
        guard queue.status(slot) == BlockRequestStatus.ok.rawValue else {
            result.ioErrors += 1
            return
        }
        if phase == .verifyRead,
           !VerifyPattern.matches(queue.buffer(slot), count: workload.blockSize, seed: workload.seed, block: slotBlock[slot]) {
            result.mismatches += 1
        }
    }

    /// xorshift64*: cheap, and the same sequence for the same seed.
    private func nextRandom() -> UInt64 {
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        return random &* 0x2545_F491_4F6C_DD1D
    }
}
