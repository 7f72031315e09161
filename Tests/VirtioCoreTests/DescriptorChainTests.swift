#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore

@Suite struct DescriptorChainTests {
    /// A virtio-blk-like request: a 16-byte header split 3 + 5 + 8 across descriptors with 8 data
    /// bytes after it in the last readable descriptor, then writable data split 100 + 412 + 511
    /// with the status byte as the last byte of the last writable descriptor.
    private func splitRequest(_ fixture: GuestFixture) throws -> DescriptorChain {
        let header: [UInt8] = Array(1...16)
        let readable = try [3, 5, 16].map { try fixture.buffer($0) }
        try fixture.ram.write(Array(header[0..<3]), at: readable[0])
        try fixture.ram.write(Array(header[3..<8]), at: readable[1])
        try fixture.ram.write(Array(header[8..<16]) + Array(repeating: 0xee, count: 8), at: readable[2])
        let writable = try [100, 412, 511].map { try fixture.buffer($0, fill: 0) }
        try fixture.driver.addChain(readable: [(readable[0], 3), (readable[1], 5), (readable[2], 16)],
                                    writable: [(writable[0], 100), (writable[1], 412), (writable[2], 511)])
        fixture.driver.publish()
        return try #require(try fixture.pop())
    }

    @Test func copiesHeaderSplitAcrossDescriptors() throws {
        let fixture = try GuestFixture()
        let chain = try splitRequest(fixture)
        #expect(chain.readableByteCount == 24)
        var header = [UInt8](repeating: 0, count: 16)
        #expect(header.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0) } == 16)
        #expect(header == Array(1...16))
        // From an offset inside the second descriptor.
        var middle = [UInt8](repeating: 0, count: 4)
        #expect(middle.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0, from: 6) } == 4)
        #expect(middle == [7, 8, 9, 10])
        // Asking for more than there is copies what there is.
        var all = [UInt8](repeating: 0, count: 100)
        #expect(all.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0) } == 24)
        #expect(all.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0, from: 24) } == 0)
        #expect(all.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0, from: 25) } == 0)
        #expect(all.withUnsafeMutableBytes { chain.copyReadableBytes(into: $0, from: -1) } == 0)
    }

    @Test func lastWritableByteIsTheStatusByte() throws {
        let fixture = try GuestFixture()
        let chain = try splitRequest(fixture)
        let status = try #require(chain.lastWritableByte)
        status.storeBytes(of: 0x02, as: UInt8.self)
        let last = try #require(chain.writable.last)
        let address = try #require(fixture.guestPhysicalAddress(of: last.pointer, length: last.length))
        #expect(try fixture.ram.read(1, at: gpa(address + 510)) == [0x02])
    }

    @Test func chainWithoutWritableBytesHasNoStatusByte() throws {
        let fixture = try GuestFixture()
        try fixture.driver.addChain(readable: [(try fixture.buffer(16), 16)])
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        #expect(chain.lastWritableByte == nil)
        #expect(chain.writable.isEmpty)
    }

    @Test func fillsIOVectorsForAByteRangeWithoutTheStatusByte() throws {
        let fixture = try GuestFixture()
        let chain = try splitRequest(fixture)
        let dataLength = chain.writableByteCount - 1
        var vectors = [iovec](repeating: iovec(), count: 8)
        let count = vectors.withUnsafeMutableBufferPointer { chain.fillIOVectors(.writable, offset: 0, length: dataLength, into: $0) }
        #expect(count == 3)
        #expect(vectors.prefix(3).map(\.iov_len) == [100, 412, 510])
        #expect(vectors[0].iov_base == UnsafeMutableRawPointer(chain.writable[0].pointer))
        // A range starting and ending inside segments.
        let inner = vectors.withUnsafeMutableBufferPointer { chain.fillIOVectors(.writable, offset: 50, length: 500, into: $0) }
        #expect(inner == 3)
        #expect(vectors[0].iov_base == UnsafeMutableRawPointer(chain.writable[0].pointer + 50))
        #expect(vectors.prefix(3).map(\.iov_len) == [50, 412, 38])
        let withinOne = vectors.withUnsafeMutableBufferPointer { chain.fillIOVectors(.writable, offset: 120, length: 300, into: $0) }
        #expect(withinOne == 1)
        #expect(vectors[0].iov_base == UnsafeMutableRawPointer(chain.writable[1].pointer + 20))
        // The readable data after the 16-byte header.
        let data = vectors.withUnsafeMutableBufferPointer { chain.fillIOVectors(.readable, offset: 16, length: 8, into: $0) }
        #expect(data == 1)
        #expect(vectors[0].iov_base == UnsafeMutableRawPointer(chain.readable[2].pointer + 8))
    }

    @Test func refusesIOVectorRangesOutsideTheSideOrTooFragmented() throws {
        let fixture = try GuestFixture()
        let chain = try splitRequest(fixture)
        var vectors = [iovec](repeating: iovec(), count: 2)
        vectors.withUnsafeMutableBufferPointer { buffer in
            #expect(chain.fillIOVectors(.writable, offset: 0, length: 1024, into: buffer) == nil)    // past the end
            #expect(chain.fillIOVectors(.writable, offset: 0, length: 1023, into: buffer) == nil)    // needs 3 vectors
            #expect(chain.fillIOVectors(.writable, offset: -1, length: 4, into: buffer) == nil)
            #expect(chain.fillIOVectors(.writable, offset: Int.max, length: 4, into: buffer) == nil)
            #expect(chain.fillIOVectors(.readable, offset: 24, length: 0, into: buffer) == 0)
        }
    }

    @Test func ioVectorsFeedPreadvDirectlyIntoGuestMemory() throws {
        let fixture = try GuestFixture()
        let chain = try splitRequest(fixture)
        let file = try MemFD.create(name: "disk", size: 4096)
        let pattern = (0..<1022).map { UInt8(truncatingIfNeeded: $0 * 7) }
        #expect(pattern.withUnsafeBytes { pwrite(file.rawValue, $0.baseAddress, $0.count, 0) } == 1022)

        var vectors = [iovec](repeating: iovec(), count: 4)
        let count = try #require(vectors.withUnsafeMutableBufferPointer {
            chain.fillIOVectors(.writable, offset: 0, length: chain.writableByteCount - 1, into: $0)
        })
        let read = vectors.withUnsafeBufferPointer { preadv(file.rawValue, $0.baseAddress, Int32(count), 0) }
        #expect(read == 1022)
        // The driver sees the data in its three buffers.
        var seen: [UInt8] = []
        for segment in chain.writable {
            let address = try #require(fixture.guestPhysicalAddress(of: segment.pointer, length: segment.length))
            seen += try fixture.ram.read(segment.length, at: gpa(address))
        }
        #expect(Array(seen.prefix(1022)) == pattern)
    }

    @Test func copiesIntoTheWritableSide() throws {
        let fixture = try GuestFixture()
        let chain = try splitRequest(fixture)
        let bytes: [UInt8] = Array(repeating: 0x42, count: 20)
        #expect(bytes.withUnsafeBytes { chain.copyToWritableBytes(from: $0, at: 90) } == 20)
        #expect(bytes.withUnsafeBytes { chain.copyToWritableBytes(from: $0, at: 1020) } == 3)
        #expect(bytes.withUnsafeBytes { chain.copyToWritableBytes(from: $0, at: 2000) } == 0)
        let first = try #require(fixture.guestPhysicalAddress(of: chain.writable[0].pointer, length: 100))
        let second = try #require(fixture.guestPhysicalAddress(of: chain.writable[1].pointer, length: 412))
        #expect(try fixture.ram.read(12, at: gpa(first + 88)) == [0, 0] + Array(repeating: 0x42, count: 10))
        #expect(try fixture.ram.read(11, at: gpa(second)) == Array(repeating: 0x42, count: 10) + [0])
    }
}
