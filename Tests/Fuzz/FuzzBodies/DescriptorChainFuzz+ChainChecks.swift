import VirtioCore

extension DescriptorChainFuzz {
    /// Checks a popped chain against the model's segments and against itself: every segment
    /// inside one region, the same segments, byte counts, copies, iovecs and status byte.
    static func check(_ chain: DescriptorChain, expected: ReferenceWalker.Outcome) {
        guard case .chain(let head, let segments) = expected else {
            fatalError("popped head \(chain.headIndex), expected \(expected)")
        }
        let guest = workspace.guest
        var actual: [ReferenceWalker.Segment] = []
        for (side, deviceWritable) in [(chain.readable, false), (chain.writable, true)] {
            for segment in side {
                guard let address = guest.guestPhysicalAddress(ofHost: segment.pointer, length: segment.length) else {
                    fatalError("segment \(segment.pointer)+\(segment.length) is not inside guest memory")
                }
                actual.append(.init(address: address, length: segment.length, deviceWritable: deviceWritable))
            }
        }
        guard chain.headIndex == head, actual == segments else {
            fatalError("popped head \(chain.headIndex) with \(actual), expected head \(head) with \(segments)")
        }
        let readableBytes = segments.reduce(0) { $0 + ($1.deviceWritable ? 0 : $1.length) }
        let writableBytes = segments.reduce(0) { $0 + ($1.deviceWritable ? $1.length : 0) }
        guard chain.readableByteCount == readableBytes, chain.writableByteCount == writableBytes else {
            fatalError("byte counts \(chain.readableByteCount)/\(chain.writableByteCount), segments add up to \(readableBytes)/\(writableBytes)")
        }
        checkReadableCopy(chain, segments: segments.filter { !$0.deviceWritable })
        checkIOVectors(chain, .readable)
        checkIOVectors(chain, .writable)
        let lastWritable = chain.writable.last.map { $0.pointer + ($0.length - 1) }
        guard chain.lastWritableByte == lastWritable else {
            fatalError("status byte at \(String(describing: chain.lastWritableByte)), last writable byte at \(String(describing: lastWritable))")
        }
    }

    /// Copies a window from the middle of the readable side and compares it with the guest's bytes
    /// at the segments' guest-physical addresses; a copy past the end copies nothing.
    private static func checkReadableCopy(_ chain: DescriptorChain, segments: [ReferenceWalker.Segment]) {
        let start = chain.readableByteCount / 3
        let count = min(Workspace.copyByteCount, chain.readableByteCount - start)
        let copied = UnsafeMutableRawBufferPointer(rebasing: workspace.copied[0..<count])
        let expected = UnsafeMutableRawBufferPointer(rebasing: workspace.expected[0..<count])
        let copiedCount = chain.copyReadableBytes(into: copied, from: start)
        var position = 0
        for segment in segments where position < start + count {
            let overlapStart = max(start, position)
            let overlapEnd = min(start + count, position + segment.length)
            if overlapStart < overlapEnd {
                let address = segment.address + UInt64(overlapStart - position)
                guard let source = workspace.guest.guestBytes(at: address, count: overlapEnd - overlapStart) else {
                    fatalError("model segment \(segment) is not inside one region")
                }
                UnsafeMutableRawBufferPointer(rebasing: expected[(overlapStart - start)..<(overlapEnd - start)])
                    .copyMemory(from: UnsafeRawBufferPointer(source))
            }
            position += segment.length
        }
        guard copiedCount == count, FuzzGuestBytes.firstDifference(UnsafeRawBufferPointer(copied), UnsafeRawBufferPointer(expected)) == nil else {
            fatalError("copyReadableBytes from \(start) copied \(copiedCount) of \(count) bytes, or other bytes than the guest's")
        }
        guard chain.copyReadableBytes(into: copied, from: chain.readableByteCount + 1) == 0 else {
            fatalError("copyReadableBytes past the readable side copied something")
        }
    }

    /// iovecs for a whole side are its segments, one each.
    private static func checkIOVectors(_ chain: DescriptorChain, _ side: DescriptorChain.Side) {
        let segments = chain.segments(side)
        guard let count = chain.fillIOVectors(side, offset: 0, length: chain.byteCount(side), into: workspace.vectors),
              count == segments.count else {
            fatalError("fillIOVectors for the whole \(side) side does not give its \(segments.count) segments")
        }
        for (index, segment) in segments.enumerated() {
            let vector = workspace.vectors[index]
            guard vector.iov_base == segment.pointer, vector.iov_len == segment.length else {
                fatalError("iovec \(index) of the \(side) side is not its segment")
            }
        }
    }
}
