#if canImport(Glibc)
import Glibc
#endif

/// Reads: runs of the chain's files, zeroes, and compressed clusters of backing files.
extension Qcow2Request {
    func planRead(_ vectors: UnsafeMutablePointer<iovec>, count: Int, offset: UInt64, length: Int) -> Bool {
        var done = 0
        while done < length {
            guard let (layer, extent) = try? disk.resolve(offset + UInt64(done), maximum: length - done, from: 0) else { return false }
            switch extent.kind {
            case .data(let host, _):
                let file = disk.layers[layer].file
                guard disk.layers[layer].holdsWholly(host: host, length: extent.length),
                      addTransfer(.read, file, at: host, from: vectors, count: count, skipping: done, length: extent.length)
                else { return false }
            case .zeroes, .unallocated:
                IOVectors.zero(vectors, count: count, skipping: done, length: extent.length)
            case .compressed(let host, let byteCount, let offsetInCluster):
                guard case .qcow2(let image) = disk.layers[layer], image.readOnly,
                      addCompressed(image, host: host, byteCount: byteCount, offsetInCluster: offsetInCluster,
                                    length: extent.length, into: vectors, count: count, skipping: done) else { return false }
            }
            done += extent.length
        }
        return true
    }

    // MARK: Compressed clusters

    /// Copies the part of a compressed cluster a read wants when it was decompressed last, else
    /// adds the read of its bytes into staging. False when that cannot be done here.
    func addCompressed(_ image: Qcow2Image, host: UInt64, byteCount: Int, offsetInCluster: Int, length: Int,
                               into vectors: UnsafeMutablePointer<iovec>, count: Int, skipping: Int) -> Bool {
        let cached = image.metadata.withLock { state in
            state.copyDecompressed(host: host, offsetInCluster: offsetInCluster, length: length, into: vectors, count: count,
                                   skipping: skipping)
        }
        if cached { return true }
        guard compressed.count < Self.maximumCompressedPieces, transferCount < Self.transferCapacity,
              scratchUsed < Self.vectorCapacity, let staging = disk.borrowStaging() else { return false }
        let alignment = UInt64(image.file.alignment)
        let start = host / alignment * alignment
        let end = (host + UInt64(byteCount) + alignment - 1) / alignment * alignment
        compressed.append(CompressedPiece(staging: staging, image: image, host: host, byteCount: byteCount,
                                          inputOffset: Int(host - start), offsetInCluster: offsetInCluster, length: length,
                                          skipping: skipping))
        guard end - start <= UInt64(staging.input.count) else { return false }
        scratch[scratchUsed] = iovec(iov_base: staging.input.base, iov_len: Int(end - start))
        transfers[transferCount] = Qcow2Transfer(direction: .read, descriptor: image.file.rawValue, vectors: scratch + scratchUsed,
                                                 count: 1, offset: start, length: Int(end - start))
        roles[transferCount] = compressed.count - 1
        transferCount += 1
        scratchUsed += 1
        compressedClustersRead += 1
        return true
    }

    /// The read's bytes are in: each compressed cluster decompressed, its part copied out, and
    /// kept as its image's cluster decompressed last.
    func decompressPieces() {
        guard let target = readVectors else { return }
        for piece in compressed where !piece.failed {
            let clusterSize = piece.image.header.geometry.clusterSize
            let input = UnsafeRawBufferPointer(start: piece.staging.input.base + piece.inputOffset, count: piece.byteCount)
            let output = UnsafeMutableRawBufferPointer(start: piece.staging.output.base, count: clusterSize)
            guard Decompressing.cluster(piece.image.header.compressionType, input, into: output) else {
                if failure == 0 { failure = EIO }
                continue
            }
            IOVectors.copy(UnsafeRawPointer(piece.staging.output.base + piece.offsetInCluster), length: piece.length,
                           into: target.base, count: target.count, skipping: piece.skipping)
            piece.image.metadata.withLock { state in state.keepDecompressed(host: piece.host, piece.staging.output.base) }
        }
    }
}
