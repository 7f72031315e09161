#if canImport(Glibc)
import Glibc
#endif
import StorageIO
import VhostUserBackend
import VirtioCore
import VirtioSpec

/// Requests to a network disk (`BlockImage.storage`): each goes to the queue's storage queue
/// whole, tagged with its descriptor head, and completes when the storage answers. The chain's
/// iovecs live in the head's slot, as for the I/O engine.
extension BlockRequestHandler {
    func startStorageRequest(_ header: BlockRequestHeader, _ chain: DescriptorChain, token: RequestToken,
                             statusOffset: Int) -> RequestProgress {
        let head = Int(token.head)
        guard let queue = storageQueue, head < transfers.count, let status = chain.lastWritableByte else {
            return .completed(writtenLength: finish(chain, status: .ioError, statusOffset: statusOffset, dataWritten: 0))
        }
        let capabilities = image.storage?.capabilities
        let slotBase = transferVectors + head * Self.slotVectors
        let slot = UnsafeMutableBufferPointer(start: slotBase, count: Self.slotVectors)
        let tag = UInt64(head)
        var transfer = BlockTransfer(token: token, operation: .read, status: status)
        let queued: Bool
        var refusal = BlockRequestStatus.ioError
        switch header.type {
        case .read:
            statistics.reads += 1
            let length = statusOffset
            guard length > 0, let offset = byteOffset(sector: header.sector, length: length),
                  let count = chain.fillIOVectors(.writable, offset: 0, length: length, into: slot) else {
                queued = false
                break
            }
            transfer.dataWritten = length
            transfer.vectorCount = count
            queued = queue.read(slotBase, count: count, length: length, offset: offset, tag: tag)
        case .write:
            statistics.writes += 1
            let length = chain.readableByteCount - BlockRequestHeader.byteCount
            guard !image.readOnly, length > 0, let offset = byteOffset(sector: header.sector, length: length),
                  let count = chain.fillIOVectors(.readable, offset: BlockRequestHeader.byteCount, length: length, into: slot)
            else {
                queued = false
                break
            }
            transfer.operation = .write
            transfer.vectorCount = count
            // Writethrough: the write is made stable before it completes.
            transfer.syncAfterWrite = capabilities?.flush == true && device.writeback.load(ordering: .relaxed) == 0
            queued = queue.write(slotBase, count: count, length: length, offset: offset, tag: tag)
        case .flush:
            statistics.flushes += 1
            // A storage without flush has every completed write stable already.
            guard capabilities?.flush == true else {
                return .completed(writtenLength: finish(chain, status: .ok, statusOffset: statusOffset, dataWritten: 0))
            }
            transfer.operation = .flush
            queued = queue.flush(tag: tag)
        case .discard, .writeZeroes:
            let zeroing = header.type == .writeZeroes
            if zeroing { statistics.writeZeroes += 1 } else { statistics.discards += 1 }
            let offered = zeroing ? capabilities?.writeZeroes == true : capabilities?.discard == true
            let (count, segmentRefusal) = offered ? validateSegments(chain, zeroing: zeroing) : (0, .unsupported)
            // One segment per request (max_discard_seg = 1 for network disks).
            guard segmentRefusal == nil, count == 1 else {
                queued = false
                refusal = segmentRefusal ?? .ioError
                break
            }
            let segment = segments[0]
            let length = UInt64(segment.sectorCount) * BlockImage.sectorSize
            guard length > 0 else {
                return .completed(writtenLength: finish(chain, status: .ok, statusOffset: statusOffset, dataWritten: 0))
            }
            let offset = segment.sector * BlockImage.sectorSize
            transfer.operation = zeroing ? .writeZeroes : .discard
            queued = zeroing
                ? queue.writeZeroes(offset: offset, length: length, unmap: segment.unmap, tag: tag)
                : queue.discard(offset: offset, length: length, tag: tag)
        case .getIdentifier, nil:
            queued = false
        }
        guard queued else {
            return .completed(writtenLength: finish(chain, status: refusal, statusOffset: statusOffset, dataWritten: 0))
        }
        transfers[head] = transfer
        transferMemory[head] = chain.memory
        return .inFlight
    }

    func reapStorageCompletions(_ queue: any BlockStorageQueue, into completions: CompletedRequests) {
        ioCompletions.removeAll()
        _ = queue.reap(into: ioCompletions)
        for index in 0..<ioCompletions.count {
            let (tag, result) = ioCompletions[index]
            guard tag < UInt64(transfers.count), transferMemory[Int(tag)] != nil else { continue }
            let head = Int(tag)
            if result == 0, transfers[head].operation == .write, transfers[head].syncAfterWrite {
                transfers[head].operation = .writeSync
                if queue.flush(tag: tag) { continue }
            }
            // A storage that does not do it after all (the server changed): UNSUPP, as for
            // an operation never offered.
            let status: BlockRequestStatus = result == 0 ? .ok : (result == -EOPNOTSUPP ? .unsupported : .ioError)
            completions.complete(transfers[head].token, writtenLength: finishTransfer(head, status))
        }
    }
}
