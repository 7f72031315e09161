#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import VhostUserBackend
import VirtioCore
import VirtioSpec

/// Requests on their way through the storage queue: each is tagged with its descriptor head,
/// its iovecs in the head's slot, and goes step by step (a write then its flush in writethrough
/// mode; one DISCARD / WRITE_ZEROES segment after another) until the storage has done the last.
extension BlockRequestHandler {
    /// Where a request stands after the storage answered a step.
    enum Step {
        /// Finished: the used length to report.
        case finished(UInt32)
        /// Its next step is in flight.
        case continuing
    }

    func startRequest(_ header: BlockRequestHeader, _ chain: DescriptorChain, token: RequestToken,
                      statusOffset: Int) -> RequestProgress {
        let head = Int(token.head)
        func answer(_ status: BlockRequestStatus) -> RequestProgress {
            .completed(writtenLength: finish(chain, status: status, statusOffset: statusOffset, dataWritten: 0))
        }
        switch header.type {
        case .read: statistics.reads += 1
        case .write: statistics.writes += 1
        case .flush: statistics.flushes += 1
        case .discard: statistics.discards += 1
        case .writeZeroes: statistics.writeZeroes += 1
        case .getIdentifier, nil: break
        }
        guard let queue = storageQueue, head < transfers.count, let status = chain.lastWritableByte else { return answer(.ioError) }
        let tag = UInt64(head)
        var transfer = BlockTransfer(token: token, operation: .read, status: status)
        var scattered = false
        let start: BlockStorageStart
        switch header.type {
        case .read, .write:
            let write = header.type == .write
            let length = write ? chain.readableByteCount - BlockRequestHeader.byteCount : statusOffset
            guard !write || !image.readOnly, length > 0, let offset = byteOffset(sector: header.sector, length: length) else {
                return answer(.ioError)
            }
            let dataOffset = write ? BlockRequestHeader.byteCount : 0
            let slotBase = transferVectors + head * Self.slotVectors
            var base = slotBase
            var count = chain.fillIOVectors(write ? .readable : .writable, offset: dataOffset, length: length,
                                            into: UnsafeMutableBufferPointer(start: slotBase, count: Self.slotVectors))
            if count == nil {
                // More pieces than a slot holds: the queue's large array, this request waited for.
                base = vectors
                scattered = true
                statistics.scattered += 1
                count = chain.fillIOVectors(write ? .readable : .writable, offset: dataOffset, length: length, into: vectorBuffer)
            }
            guard let count else { return answer(.ioError) }
            transfer.operation = write ? .write : .read
            transfer.dataWritten = write ? 0 : length
            // Writethrough: the write is made stable before it completes.
            transfer.syncAfterWrite = write && writethroughNeedsSync
            transfers[head] = transfer
            start = write
                ? queue.write(base, count: count, length: length, offset: offset, tag: tag)
                : queue.read(base, count: count, length: length, offset: offset, tag: tag)
        case .flush:
            // A storage without flush has every completed write stable already.
            guard capabilities.flush else { return answer(.ok) }
            transfer.operation = .flush
            transfers[head] = transfer
            start = queue.flush(tag: tag)
        case .discard, .writeZeroes:
            let zeroing = header.type == .writeZeroes
            guard zeroing ? capabilities.writeZeroes : capabilities.discard else { return answer(.unsupported) }
            let (count, refusal) = validateSegments(chain, zeroing: zeroing, into: segments + head * Int(maximumDiscardSegments))
            if let refusal { return answer(refusal) }
            transfer.operation = zeroing ? .writeZeroes : .discard
            transfer.segmentCount = count
            transfers[head] = transfer
            start = startNextSegment(head)
        case .getIdentifier, nil:
            return answer(.unsupported)
        }
        switch proceed(head, start) {
        case .finished(let writtenLength):
            return .completed(writtenLength: writtenLength)
        case .continuing:
            // In flight: the chain's memory stays mapped until it completes (what completes at
            // once needs no reference, which spares two atomic reference counts per request).
            transferMemory[head] = chain.memory
            return scattered ? .completed(writtenLength: waitForScattered(head)) : .inFlight
        }
    }

    /// Whether a write must be followed by a flush: the driver chose writethrough, and the
    /// storage neither makes writes stable already nor lacks (or ignores) flushes.
    var writethroughNeedsSync: Bool {
        device.writeback.load(ordering: .relaxed) == 0 && capabilities.flush && !capabilities.writesAreStable
    }

    /// Starts the request's next DISCARD / WRITE_ZEROES segment (empty ones are done at once).
    private func startNextSegment(_ head: Int) -> BlockStorageStart {
        guard let queue = storageQueue else { return .done(-EIO) }
        while transfers[head].nextSegment < transfers[head].segmentCount {
            // SAFETY: nextSegment < segmentCount <= maximumDiscardSegments, the head's share.
            let segment = segments[head * Int(maximumDiscardSegments) + transfers[head].nextSegment]
            transfers[head].nextSegment += 1
            let length = UInt64(segment.sectorCount) * BlockImage.sectorSize
            guard length > 0 else { continue }
            // Our own copy, validated: the range lies inside the disk.
            let offset = segment.sector * BlockImage.sectorSize
            return transfers[head].operation == .writeZeroes
                ? queue.writeZeroes(offset: offset, length: length, unmap: segment.unmap, tag: UInt64(head))
                : queue.discard(offset: offset, length: length, tag: UInt64(head))
        }
        return .done(0)
    }

    /// Takes the request on from the storage's answer to its last step, until a step is in
    /// flight or the request is finished.
    func proceed(_ head: Int, _ answer: BlockStorageStart) -> Step {
        var answer = answer
        while true {
            guard case .done(let result) = answer else { return .continuing }
            guard result == 0 else {
                // A storage that does not do it after all (the server changed): UNSUPP, as for
                // an operation never offered.
                return .finished(finishTransfer(head, result == -EOPNOTSUPP ? .unsupported : .ioError))
            }
            switch transfers[head].operation {
            case .write where transfers[head].syncAfterWrite:
                transfers[head].operation = .writeSync
                answer = storageQueue?.flush(tag: UInt64(head)) ?? .done(-EIO)
            case .discard where transfers[head].nextSegment < transfers[head].segmentCount,
                 .writeZeroes where transfers[head].nextSegment < transfers[head].segmentCount:
                answer = startNextSegment(head)
            default:
                return .finished(finishTransfer(head, .ok))
            }
        }
    }

    func reapCompletions(into completions: CompletedRequests) {
        guard let queue = storageQueue else { return }
        var requeued = deliver(deferredCompletions, into: completions)
        deferredCompletions.removeAll()
        ioCompletions.removeAll()
        _ = queue.reap(into: ioCompletions)
        if deliver(ioCompletions, into: completions) { requeued = true }
        if requeued { queue.submit() }
    }

    /// Takes each reaped request on; true when a next step was started. (A method, not a
    /// closure: a captured variable would be boxed on the heap.)
    private func deliver(_ reaped: IOCompletions, into completions: CompletedRequests) -> Bool {
        var requeued = false
        for index in 0..<reaped.count {
            let (tag, result) = reaped[index]
            guard tag < UInt64(transfers.count), transferMemory[Int(tag)] != nil else { continue }
            let head = Int(tag)
            switch proceed(head, .done(result)) {
            case .finished(let writtenLength): completions.complete(transfers[head].token, writtenLength: writtenLength)
            case .continuing: requeued = true
            }
        }
        return requeued
    }

    /// A request whose iovecs are in the queue's one large array: waits, on this thread, until
    /// the storage has done it. What completes meanwhile is kept for the next reap.
    private func waitForScattered(_ head: Int) -> UInt32 {
        guard let queue = storageQueue else { return finishTransfer(head, .ioError) }
        while true {
            queue.submit()
            if let notifier = queue.completionNotifier, !queue.hasCompletions, !queue.prepareToSleep() {
                // Bounded, so a storage's own timers (prepareToSleep) are looked at again.
                var descriptor = pollfd(fd: notifier, events: Int16(POLLIN), revents: 0)
                _ = poll(&descriptor, 1, 100)
            }
            ioCompletions.removeAll()
            let reaped = queue.reap(into: ioCompletions)
            if reaped == 0, queue.completionNotifier == nil {
                // A storage that completes at once lost the operation: fail rather than wait forever.
                return finishTransfer(head, .ioError)
            }
            for index in 0..<ioCompletions.count {
                let (tag, result) = ioCompletions[index]
                guard tag == UInt64(head) else {
                    deferredCompletions.append(tag: tag, result: result)
                    continue
                }
                if case .finished(let writtenLength) = proceed(head, .done(result)) { return writtenLength }
            }
        }
    }

    /// Writes the status byte, lets go of the memory and returns the used length.
    func finishTransfer(_ head: Int, _ status: BlockRequestStatus) -> UInt32 {
        if status == .ioError { statistics.errors += 1 }
        let transfer = transfers[head]
        // SAFETY: the chain's last writable byte, accessible when the request started, in the
        // memory the chain or `transferMemory` kept mapped until now.
        transfer.status?.storeBytes(of: status.rawValue, as: UInt8.self)
        if transferMemory[head] != nil { transferMemory[head] = nil }
        return UInt32(clamping: (status == .ok ? transfer.dataWritten : 0) + 1)
    }
}
