#if canImport(Glibc)
import Glibc
#endif
import Qcow2
import StorageIO
import VhostSystem

/// qcow2 reads and writes that do not map to one run of one file (zeroes, several runs, a
/// backing file, clusters to allocate): the tag's `Qcow2Request` says which transfers to make,
/// this starts them through the engine (or at once, through the page cache, when that needs no
/// waiting) and hands back their results until it finishes. Their engine tags carry
/// `qcow2TagFlag`, the queue's tag and the transfer's index.
extension FileStorageQueue {
    static let qcow2TagFlag: UInt64 = 1 << 63

    /// Starts a read or write through the tag's qcow2 request. Nil when it must be served at once.
    func startQcow2(_ head: Int, write: Bool, _ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64,
                    length: Int) -> BlockStorageStart? {
        guard let requests = qcow2Requests, head < requests.count else { return nil }
        let request = requests[head]
        let started = write
            ? request.startWrite(vectors, count: count, offset: offset, length: length)
            : request.startRead(vectors, count: count, offset: offset, length: length)
        guard let started else { return nil }
        qcow2ThroughEngine += 1
        transfers[head] = FileTransfer(operation: write ? .write : .read, active: true)
        if image.ioDelayMicroseconds > 0 { usleep(image.ioDelayMicroseconds) }
        switch driveQcow2(head, started) {
        case .finished(let result): return .done(result)
        case .continuing: return .queued
        }
    }

    /// Applies one completion of a qcow2 transfer; nil when it names no request in flight.
    func advanceQcow2(_ tag: UInt64, result: Int32) -> (head: Int, step: Step?) {
        let head = Int((tag >> 16) & 0xffff)
        guard let requests = qcow2Requests, head < requests.count, transfers[head].active else { return (head, nil) }
        return (head, driveQcow2(head, requests[head].completed(Int(tag & 0xffff), result: result)))
    }

    /// Starts what the request asks for until it waits on the engine or finishes.
    private func driveQcow2(_ head: Int, _ first: Qcow2Request.Progress) -> Step {
        guard let requests = qcow2Requests, head < requests.count else { return .finished(-EIO) }
        let request = requests[head]
        var progress = first
        while true {
            switch progress {
            case .waiting:
                return .continuing
            case .finished(let error):
                transfers[head].active = false
                return .finished(error == 0 ? 0 : -EIO)
            case .start(let count):
                // Transfers done at once are reported after all were started: a request moves
                // to its next phase only when the last one of this phase is reported.
                var done = 0
                for index in 0..<count {
                    let tag = Self.qcow2TagFlag | UInt64(head) << 16 | UInt64(index)
                    if let result = startQcow2Transfer(request.transfers[index], tag: tag) {
                        qcow2Results[done] = (index, result)
                        done += 1
                    }
                }
                progress = .waiting
                for index in 0..<done {
                    let next = request.completed(qcow2Results[index].index, result: qcow2Results[index].result)
                    if next != .waiting { progress = next }
                }
            }
        }
    }

    /// Starts one transfer: at once through the page cache when that needs no waiting (its
    /// result returned), else through the engine (nil), else on this thread when the engine
    /// has no room.
    private func startQcow2Transfer(_ transfer: Qcow2Transfer, tag: UInt64) -> Int32? {
        let write = transfer.direction == .write
        var mode = write ? inlineWrites : inlineReads
        if mode == .withoutWaiting {
            let result = OwnedFileDescriptor.transferWithoutWaiting(transfer.descriptor, transfer.vectors, count: transfer.count,
                                                                     offset: transfer.offset, write: write)
            if result > 0 { return result }
            if result == -EOPNOTSUPP {
                mode = .always
                if write { inlineWrites = .always } else { inlineReads = .always }
            }
        }
        if mode != .always {
            let queued = write
                ? engine.write(transfer.descriptor, transfer.vectors, count: transfer.count, offset: transfer.offset, tag: tag)
                : engine.read(transfer.descriptor, transfer.vectors, count: transfer.count, offset: transfer.offset, tag: tag)
            if queued { return nil }
        }
        let error = PositionedTransfer.run(transfer.descriptor, transfer.vectors, count: transfer.count, byteCount: transfer.length,
                                           offset: transfer.offset, write: write, pastEnd: .zeroFill)
        return error == 0 ? Int32(clamping: transfer.length) : -error
    }
}
