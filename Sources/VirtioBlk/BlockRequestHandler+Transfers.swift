#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import VhostSystem
import VhostUserBackend
import VirtioCore
import VirtioSpec

/// Reads, writes and flushes through the I/O engine: a request's transfer lives in its head's
/// slot from submission to completion, continued after short transfers and EAGAIN / EINTR,
/// followed by an fdatasync in writethrough mode, and finished by writing the status byte.
extension BlockRequestHandler {
    /// What one completion did to its transfer.
    enum Step {
        /// Finished: the used length to report.
        case finished(UInt32)
        /// Queued again (continued, retried, or its fdatasync started).
        case continuing
        /// The tag names no transfer of this queue.
        case unknown
    }

    /// Starts a read, write or flush through the engine. Nil when the request is better served
    /// inline: the null disk, a request the checks refuse (the inline path answers it), data
    /// scattered over more pieces than a slot holds, or a status byte out of reach.
    func startTransfer(_ operation: BlockTransfer.Operation, _ chain: DescriptorChain, token: RequestToken,
                       sector: UInt64, length: Int) -> RequestProgress? {
        let head = Int(token.head)
        guard !image.isNull, head < transfers.count, let status = chain.lastWritableByte else { return nil }
        if (operation == .read && inlineReads == .always) || (operation == .write && inlineWrites == .always) { return nil }
        let slotBase = transferVectors + head * Self.slotVectors
        let slot = UnsafeMutableBufferPointer(start: slotBase, count: Self.slotVectors)
        var transfer = BlockTransfer(token: token, operation: operation, status: status)
        switch operation {
        case .read:
            guard length > 0, let offset = byteOffset(sector: sector, length: length),
                  let count = chain.fillIOVectors(.writable, offset: 0, length: length, into: slot) else { return nil }
            transfer.dataWritten = length
            guard let (descriptor, fileOffset) = image.directMapping(offset: offset, length: length, forWrite: false),
                  isDirectAligned(slotBase, count: count, offset: fileOffset, length: length) else {
                return startQcow2Transfer(transfer, chain: chain, head: head, count: count, offset: offset, length: length)
            }
            (transfer.descriptor, transfer.offset, transfer.remaining, transfer.vectorCount) = (descriptor, fileOffset, length, count)
        case .write:
            guard !image.readOnly, length > 0, let offset = byteOffset(sector: sector, length: length),
                  let count = chain.fillIOVectors(.readable, offset: BlockRequestHeader.byteCount, length: length, into: slot)
            else { return nil }
            guard let (descriptor, fileOffset) = image.directMapping(offset: offset, length: length, forWrite: true),
                  isDirectAligned(slotBase, count: count, offset: fileOffset, length: length) else {
                return startQcow2Transfer(transfer, chain: chain, head: head, count: count, offset: offset, length: length)
            }
            (transfer.descriptor, transfer.offset, transfer.remaining, transfer.vectorCount) = (descriptor, fileOffset, length, count)
            // Writethrough mode: the write is stable before it completes.
            transfer.syncAfterWrite = writethroughNeedsSync
        case .flush, .writeSync:
            // --cache=unsafe: answered inline, without an fdatasync.
            guard !image.cache.ignoresFlush else { return nil }
            transfer.descriptor = image.descriptor.rawValue
        case .discard, .writeZeroes:
            return nil
        }
        transfers[head] = transfer
        transferMemory[head] = chain.memory
        if image.ioDelayMicroseconds > 0 { usleep(image.ioDelayMicroseconds) }
        // Through the page cache, data that is there is copied at once (RWF_NOWAIT): an
        // io_uring round trip costs more than the copy. What would block goes to the engine.
        if (operation == .read && inlineReads == .withoutWaiting) || (operation == .write && inlineWrites == .withoutWaiting) {
            let vectors = transferVectors + head * Self.slotVectors
            let result = OwnedFileDescriptor.transferWithoutWaiting(transfer.descriptor, vectors, count: transfer.vectorCount,
                                                                     offset: transfer.offset, write: operation == .write)
            if result == -EOPNOTSUPP {
                // No RWF_NOWAIT for this direction here: its transfers are done at once from
                // now on (they only copy to or from memory: tmpfs, or the page cache).
                if operation == .read { inlineReads = .always } else { inlineWrites = .always }
                transferMemory[head] = nil
                return nil
            }
            if result > 0 {
                switch advance(UInt64(head), result: result) {
                case .finished(let writtenLength): return .completed(writtenLength: writtenLength)
                case .continuing: return .inFlight
                case .unknown: return nil
                }
            }
            // Would block (or failed: the engine reports the error itself).
        }
        guard enqueue(head) else {
            transferMemory[head] = nil
            return nil
        }
        guard engine.completionNotifier == nil else { return .inFlight }
        return .completed(writtenLength: waitForTransfer(head: token.head))
    }

    /// Hands the slot's transfer, as it stands, to the engine.
    func enqueue(_ head: Int) -> Bool {
        let transfer = transfers[head]
        let fd = transfer.descriptor
        let tag = UInt64(head)
        let vectors = transferVectors + head * Self.slotVectors + transfer.firstVector
        let count = transfer.vectorCount - transfer.firstVector
        switch transfer.operation {
        case .read: return engine.read(fd, vectors, count: count, offset: transfer.offset, tag: tag)
        case .write: return engine.write(fd, vectors, count: count, offset: transfer.offset, tag: tag)
        case .flush, .writeSync: return engine.synchronize(fd, tag: tag)
        case .discard, .writeZeroes: return false
        }
    }

    func reapCompletions(into completions: CompletedRequests) {
        if let storageQueue {
            reapStorageCompletions(storageQueue, into: completions)
            return
        }
        ioCompletions.removeAll()
        _ = engine.reap(into: ioCompletions)
        var requeued = false
        for index in 0..<ioCompletions.count {
            let (tag, result) = ioCompletions[index]
            let (head, step) = tag & Self.qcow2TagFlag != 0 ? advanceQcow2(tag, result: result) : (Int(truncatingIfNeeded: tag), advance(tag, result: result))
            switch step {
            case .finished(let writtenLength):
                // head < transfers.count: advance checked it.
                completions.complete(transfers[head].token, writtenLength: writtenLength)
            case .continuing:
                requeued = true
            case .unknown:
                break
            }
        }
        if requeued { engine.submit() }
    }

    /// Synchronous engines: runs the engine until `head`'s transfer finished.
    func waitForTransfer(head: UInt16) -> UInt32 {
        while true {
            engine.submit()
            ioCompletions.removeAll()
            guard engine.reap(into: ioCompletions) > 0 else {
                // The engine lost the operation: fail rather than wait forever.
                return finishTransfer(Int(head), .ioError)
            }
            for index in 0..<ioCompletions.count {
                let (tag, result) = ioCompletions[index]
                if case .finished(let writtenLength) = advance(tag, result: result), tag == UInt64(head) {
                    return writtenLength
                }
            }
        }
    }

    /// Applies one completion to its transfer.
    func advance(_ tag: UInt64, result: Int32) -> Step {
        guard tag < UInt64(transfers.count), transferMemory[Int(tag)] != nil else { return .unknown }
        let head = Int(tag)
        if result == -EAGAIN || result == -EINTR {
            transfers[head].retries += 1
            guard transfers[head].retries <= Self.retryLimit, enqueue(head) else { return .finished(finishTransfer(head, .ioError)) }
            return .continuing
        }
        guard result >= 0 else { return .finished(finishTransfer(head, .ioError)) }
        switch transfers[head].operation {
        case .flush, .writeSync, .discard, .writeZeroes:
            return .finished(finishTransfer(head, .ok))
        case .read, .write:
            let done = Int(result)
            guard done > 0 else { return .finished(finishTransfer(head, .ioError)) }  // no progress: past the end
            if done < transfers[head].remaining {
                skip(done, in: head)
                guard enqueue(head) else { return .finished(finishTransfer(head, .ioError)) }
                return .continuing
            }
            if transfers[head].operation == .write, transfers[head].syncAfterWrite {
                transfers[head].operation = .writeSync
                guard enqueue(head) else { return .finished(finishTransfer(head, .ioError)) }
                return .continuing
            }
            return .finished(finishTransfer(head, .ok))
        }
    }

    /// Moves the transfer `done` bytes on after a short transfer: complete iovecs are skipped,
    /// the one partly done is trimmed.
    private func skip(_ done: Int, in head: Int) {
        let vectors = transferVectors + head * Self.slotVectors
        var transfer = transfers[head]
        transfer.remaining -= done
        transfer.offset += UInt64(done)
        var advance = done
        while transfer.firstVector < transfer.vectorCount, advance >= vectors[transfer.firstVector].iov_len {
            advance -= vectors[transfer.firstVector].iov_len
            transfer.firstVector += 1
        }
        if transfer.firstVector < transfer.vectorCount, advance > 0 {
            vectors[transfer.firstVector].iov_base = vectors[transfer.firstVector].iov_base.map { $0 + advance }
            vectors[transfer.firstVector].iov_len -= advance
        }
        transfers[head] = transfer
    }

    /// Writes the status byte, lets go of the memory and returns the used length.
    func finishTransfer(_ head: Int, _ status: BlockRequestStatus) -> UInt32 {
        if status == .ioError { statistics.errors += 1 }
        let transfer = transfers[head]
        // SAFETY: the chain's last writable byte, accessible when the transfer started, in the
        // memory `transferMemory` kept mapped until now.
        transfer.status?.storeBytes(of: status.rawValue, as: UInt8.self)
        transferMemory[head] = nil
        return UInt32(clamping: (status == .ok ? transfer.dataWritten : 0) + 1)
    }
}
