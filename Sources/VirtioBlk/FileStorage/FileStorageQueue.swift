#if canImport(Glibc)
import Glibc
#endif
import Qcow2
import StorageIO
import VhostSystem

/// One virtqueue's path to a file, on that queue's thread.
///
/// Reads, writes and fdatasyncs go to the queue's I/O engine straight into (or from) the
/// caller's iovecs: with io_uring many are in flight and complete in any order; a short transfer
/// or EAGAIN / EINTR is continued until it is whole, and only then reported. Through the page
/// cache, data that is there is copied at once (RWF_NOWAIT). What the engine cannot take is
/// served at once on this thread: the null disk, DISCARD and WRITE_ZEROES, qcow2 requests its
/// `Qcow2Request` cannot drive, requests O_DIRECT cannot take as they are (+Bounce), and every
/// request when the engine is synchronous. Nothing is allocated per request.
final class FileStorageQueue: BlockStorageQueue {
    let image: BlockImage
    let engine: any IOEngine
    /// Each tag's transfer.
    let transfers: UnsafeMutableBufferPointer<FileTransfer>
    /// What the engine reports, before it is continued or passed on.
    let engineCompletions: IOCompletions
    /// qcow2 with an engine that completes asynchronously: each tag's request (+Qcow2), and
    /// the results of its transfers done at once.
    let qcow2Requests: [Qcow2Request]?
    let qcow2Results: UnsafeMutablePointer<(index: Int, result: Int32)>
    /// qcow2 reads and writes not mapped to one run that went through the engine
    /// (`Qcow2Request`) rather than the synchronous path, for the statistics line.
    var qcow2ThroughEngine = 0
    private let zeroes: UnsafeMutableRawBufferPointer
    /// With O_DIRECT: where requests whose buffers or offsets miss its alignment are staged
    /// (`bounceCapacity` bytes, aligned for O_DIRECT).
    let bounce: UnsafeMutableRawBufferPointer?

    /// How reads and writes through the page cache are tried before the engine.
    enum InlineTransfers {
        /// Never: O_DIRECT, or the synchronous engine.
        case never
        /// At once if that needs no waiting (RWF_NOWAIT: the data is in the page cache).
        case withoutWaiting
        /// Always at once: the file system has no RWF_NOWAIT for this direction (tmpfs, all in
        /// memory; ext4's buffered writes, which only copy into the page cache).
        case always
    }
    /// For reads and for writes.
    var inlineReads: InlineTransfers
    var inlineWrites: InlineTransfers

    /// The bounce buffer's size: unaligned requests are staged through it in pieces this large.
    static let bounceCapacity = 1 << 20
    /// Resubmissions of one transfer after EAGAIN or EINTR before it fails.
    static let retryLimit = 1_000

    /// - Parameter pageCacheFirst: try page-cache transfers at once before the engine (tests of
    ///   the engine's own path turn it off).
    init(image: BlockImage, engine: any IOEngine, depth: Int, pageCacheFirst: Bool = true) {
        self.image = image
        self.engine = engine
        let slots = max(depth, 1)
        inlineReads = pageCacheFirst && !image.cache.bypassesPageCache && engine.completionNotifier != nil
            ? .withoutWaiting : .never
        inlineWrites = inlineReads
        transfers = .allocate(capacity: slots)
        transfers.initialize(repeating: FileTransfer())
        if let disk = image.qcow2, engine.completionNotifier != nil {
            qcow2Requests = (0..<slots).map { _ in Qcow2Request(disk: disk) }
        } else {
            qcow2Requests = nil
        }
        qcow2Results = .allocate(capacity: Qcow2Request.transferCapacity)
        // qcow2 requests complete up to `transferCapacity` engine operations each.
        engineCompletions = IOCompletions(capacity: slots * (qcow2Requests == nil ? 1 : 4))
        zeroes = .allocate(byteCount: 64 * 1024, alignment: 4096)
        zeroes.initializeMemory(as: UInt8.self, repeating: 0)
        bounce = image.directAlignment.map {
            .allocate(byteCount: Self.bounceCapacity, alignment: max(4096, $0.memory))
        }
    }

    deinit {
        transfers.deallocate()  // FileTransfer is trivial
        qcow2Results.deallocate()
        zeroes.deallocate()
        bounce?.deallocate()
    }

    var statistics: [(name: String, value: String)] {
        [("aio", "\(engine.kind)"), ("qcow2-engine", "\(qcow2ThroughEngine)")]
    }

    var completionNotifier: Int32? { engine.completionNotifier }

    func submit() { engine.submit() }

    var hasCompletions: Bool { engine.hasCompletions }

    func prepareToSleep() -> Bool { engine.prepareToSleep() }

    // MARK: - Operations

    func read(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        transfer(.read, vectors, count: count, length: length, offset: offset, tag: tag)
    }

    func write(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        guard !image.readOnly else { return .done(-EROFS) }
        return transfer(.write, vectors, count: count, length: length, offset: offset, tag: tag)
    }

    func flush(tag: UInt64) -> BlockStorageStart {
        guard !image.isNull, !image.cache.ignoresFlush else { return .done(0) }
        guard tag < UInt64(transfers.count) else { return .done(-EINVAL) }
        let head = Int(tag)
        transfers[head] = FileTransfer(operation: .synchronize, descriptor: image.descriptor.rawValue, active: true)
        return start(head) ?? .done(image.flush() == 0 ? 0 : -EIO)
    }

    func discard(offset: UInt64, length: UInt64, tag: UInt64) -> BlockStorageStart {
        guard !image.readOnly else { return .done(-EROFS) }
        return .done(image.discard(offset: offset, length: length) == 0 ? 0 : -EIO)
    }

    func writeZeroes(offset: UInt64, length: UInt64, unmap: Bool, tag: UInt64) -> BlockStorageStart {
        guard !image.readOnly else { return .done(-EROFS) }
        let result = image.writeZeroes(offset: offset, length: length, unmap: unmap, zeroes: UnsafeRawBufferPointer(zeroes))
        return .done(result == 0 ? 0 : -EIO)
    }

    /// A read or write: through the engine where the file takes it as it is, else at once.
    private func transfer(_ operation: FileTransfer.Operation, _ vectors: UnsafeMutablePointer<iovec>, count: Int,
                          length: Int, offset: UInt64, tag: UInt64) -> BlockStorageStart {
        let write = operation == .write
        // More iovecs than one system call takes: served at once, in calls of that many.
        guard tag < UInt64(transfers.count), length > 0, !image.isNull, count <= PositionedTransfer.maximumVectorsPerCall,
              (write ? inlineWrites : inlineReads) != .always else {
            return atOnce(vectors, count: count, length: length, offset: offset, write: write)
        }
        let head = Int(tag)
        guard let (descriptor, fileOffset) = image.directMapping(offset: offset, length: length, forWrite: write),
              isDirectAligned(vectors, count: count, offset: fileOffset, length: length) else {
            return startQcow2(head, write: write, vectors, count: count, offset: offset, length: length)
                ?? atOnce(vectors, count: count, length: length, offset: offset, write: write)
        }
        transfers[head] = FileTransfer(operation: operation, descriptor: descriptor, offset: fileOffset, remaining: length,
                                       vectors: vectors, vectorCount: count, active: true)
        if image.ioDelayMicroseconds > 0 { usleep(image.ioDelayMicroseconds) }
        // Through the page cache, data that is there is copied at once (RWF_NOWAIT): an
        // io_uring round trip costs more than the copy. What would block goes to the engine.
        if (write ? inlineWrites : inlineReads) == .withoutWaiting {
            let result = OwnedFileDescriptor.transferWithoutWaiting(descriptor, vectors, count: count, offset: fileOffset, write: write)
            if result == -EOPNOTSUPP {
                // No RWF_NOWAIT for this direction here: its transfers are done at once from
                // now on (they only copy to or from memory: tmpfs, or the page cache).
                if write { inlineWrites = .always } else { inlineReads = .always }
                transfers[head].active = false
                return atOnce(vectors, count: count, length: length, offset: offset, write: write)
            }
            if result > 0 {
                switch advance(head, result: result) {
                case .finished(let result): return .done(result)
                case .continuing: return .queued
                }
            }
            // Would block (or failed: the engine reports the error itself).
        }
        return start(head) ?? atOnce(vectors, count: count, length: length, offset: offset, write: write)
    }

    /// Served on this thread: the image's own positioned I/O (qcow2's synchronous path), or the
    /// bounce buffer where O_DIRECT cannot take a raw request as it is.
    private func atOnce(_ vectors: UnsafeMutablePointer<iovec>, count: Int, length: Int, offset: UInt64,
                        write: Bool) -> BlockStorageStart {
        if image.qcow2 == nil, !isDirectAligned(vectors, count: count, offset: offset, length: length) {
            return .done(bounce(vectors, count: count, offset: offset, length: length, write: write) ? 0 : -EIO)
        }
        let error = write
            ? image.write(vectors, count: count, byteCount: length, offset: offset)
            : image.read(vectors, count: count, byteCount: length, offset: offset)
        return .done(error == 0 ? 0 : -EIO)
    }

    // MARK: - Through the engine

    /// What one completion did to its transfer.
    enum Step {
        /// Whole, or failed: 0 or a negative errno.
        case finished(Int32)
        /// Queued again (continued or retried).
        case continuing
    }

    /// Hands the tag's transfer to the engine; with a synchronous engine, runs it to the end.
    /// Nil when the engine has no room (qcow2's transfers can fill its ring): the caller serves
    /// the operation at once instead.
    private func start(_ head: Int) -> BlockStorageStart? {
        guard enqueue(head) else {
            transfers[head].active = false
            return nil
        }
        guard engine.completionNotifier == nil else { return .queued }
        return .done(waitForTransfer(head))
    }

    /// Hands the tag's transfer, as it stands, to the engine.
    private func enqueue(_ head: Int) -> Bool {
        let transfer = transfers[head]
        let tag = UInt64(head)
        switch transfer.operation {
        case .synchronize:
            return engine.synchronize(transfer.descriptor, tag: tag)
        case .read, .write:
            guard let vectors = transfer.vectors else { return false }
            let first = vectors + transfer.firstVector
            let count = transfer.vectorCount - transfer.firstVector
            return transfer.operation == .read
                ? engine.read(transfer.descriptor, first, count: count, offset: transfer.offset, tag: tag)
                : engine.write(transfer.descriptor, first, count: count, offset: transfer.offset, tag: tag)
        }
    }

    func reap(into completions: IOCompletions) -> Int {
        let before = completions.count
        engineCompletions.removeAll()
        _ = engine.reap(into: engineCompletions)
        var requeued = false
        for index in 0..<engineCompletions.count {
            let (tag, result) = engineCompletions[index]
            let step: Step?
            let head: Int
            if tag & Self.qcow2TagFlag != 0 {
                (head, step) = advanceQcow2(tag, result: result)
            } else {
                head = Int(truncatingIfNeeded: tag)
                step = head >= 0 && head < transfers.count && transfers[head].active ? advance(head, result: result) : nil
            }
            switch step {
            case .finished(let result)?: completions.append(tag: UInt64(head), result: result)
            case .continuing?: requeued = true
            case nil: break
            }
        }
        if requeued { engine.submit() }
        return completions.count - before
    }

    /// Synchronous engines: runs the engine until `head`'s transfer is whole.
    private func waitForTransfer(_ head: Int) -> Int32 {
        while true {
            engine.submit()
            engineCompletions.removeAll()
            guard engine.reap(into: engineCompletions) > 0 else {
                // The engine lost the operation: fail rather than wait forever.
                transfers[head].active = false
                return -EIO
            }
            for index in 0..<engineCompletions.count {
                let (tag, result) = engineCompletions[index]
                guard tag == UInt64(head) else { continue }
                if case .finished(let result) = advance(head, result: result) { return result }
            }
        }
    }

    /// Applies one completion to its transfer (an active one).
    private func advance(_ head: Int, result: Int32) -> Step {
        if result == -EAGAIN || result == -EINTR {
            transfers[head].retries += 1
            guard transfers[head].retries <= Self.retryLimit, enqueue(head) else { return finish(head, -EIO) }
            return .continuing
        }
        guard result >= 0 else { return finish(head, result) }
        guard transfers[head].operation != .synchronize else { return finish(head, 0) }
        let done = Int(result)
        guard done > 0 else { return finish(head, -EIO) }  // no progress: past the end
        if done < transfers[head].remaining {
            skip(done, in: head)
            guard enqueue(head) else { return finish(head, -EIO) }
            return .continuing
        }
        return finish(head, 0)
    }

    private func finish(_ head: Int, _ result: Int32) -> Step {
        transfers[head].active = false
        return .finished(result)
    }

    /// Moves the transfer `done` bytes on after a short transfer: complete iovecs are skipped,
    /// the one partly done is trimmed.
    private func skip(_ done: Int, in head: Int) {
        var transfer = transfers[head]
        guard let vectors = transfer.vectors else { return }
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
}
