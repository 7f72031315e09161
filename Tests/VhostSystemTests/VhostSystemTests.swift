#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import VhostSystem

@Suite("VhostSystem", .serialized)
struct VhostSystemTests {
    @Test func memfdPassedOverSocketpairSharesMemory() throws {
        let (left, right) = try UnixSocket.pair()
        let memfd = try MemFD.create(name: "test", size: 8192)
        let local = try MemoryMapping(descriptor: memfd, offset: 0, length: 8192)
        try left.send([1, 2, 3, 4], descriptors: [memfd.rawValue])

        var buffer = [UInt8](repeating: 0, count: 4)
        let received = try buffer.withUnsafeMutableBytes { try right.receiveExactly(into: $0) }
        #expect(buffer == [1, 2, 3, 4])
        try #require(received.descriptors.count == 1)
        #expect(received.descriptors[0].rawValue != memfd.rawValue)

        let remote = try MemoryMapping(descriptor: received.descriptors[0], offset: 4096, length: 4096)
        local.bytes[4096 + 7] = 0xA5
        #expect(remote.bytes[7] == 0xA5)
    }

    @Test func receivedDescriptorsAreCloseOnExec() throws {
        let (left, right) = try UnixSocket.pair()
        let event = try EventFD()
        try left.send([0], descriptors: [event.rawValue])
        var byte: UInt8 = 0
        let received = try withUnsafeMutableBytes(of: &byte) { try right.receive(into: $0) }
        let flags = fcntl(received.descriptors[0].rawValue, F_GETFD)
        #expect(flags & FD_CLOEXEC != 0)
    }

    /// Checked by identity, not by the process's descriptor count: another thread (the test
    /// runner's, a sanitizer's) may open and close descriptors meanwhile and reuse the numbers.
    @Test func droppingReceivedDescriptorsClosesThem() throws {
        let (left, right) = try UnixSocket.pair()
        let memfds = try (0..<8).map { _ in try MemFD.create(name: "leak", size: 4096) }
        var numbers: [Int32] = []
        do {
            try left.send([9], descriptors: memfds.map(\.rawValue))
            var byte: UInt8 = 0
            let received = try withUnsafeMutableBytes(of: &byte) { try right.receive(into: $0) }
            try #require(received.descriptors.count == 8)
            for (memfd, descriptor) in zip(memfds, received.descriptors) {
                #expect(Self.refersToSameFile(descriptor.rawValue, as: memfd.rawValue))
            }
            numbers = received.descriptors.map(\.rawValue)
        }
        for (memfd, number) in zip(memfds, numbers) {
            #expect(!Self.refersToSameFile(number, as: memfd.rawValue), "descriptor \(number) still open")
        }
    }

    private static func refersToSameFile(_ number: Int32, as original: Int32) -> Bool {
        var numberStatus = stat(), originalStatus = stat()
        guard fstat(number, &numberStatus) == 0, fstat(original, &originalStatus) == 0 else { return false }
        return numberStatus.st_dev == originalStatus.st_dev && numberStatus.st_ino == originalStatus.st_ino
    }

    @Test func peerCloseMidMessageIsReported() throws {
        var (left, right): (UnixSocket?, UnixSocket) = try UnixSocket.pair()
        try left?.send([1, 2])
        left = nil
        var buffer = [UInt8](repeating: 0, count: 12)
        #expect(throws: SystemError.self) {
            _ = try buffer.withUnsafeMutableBytes { try right.receiveExactly(into: $0) }
        }
    }

    @Test func receiveTimeoutBoundsAStalledPeer() throws {
        let (left, right) = try UnixSocket.pair()
        try right.setReceiveTimeout(milliseconds: 50)
        try left.send([1])
        var buffer = [UInt8](repeating: 0, count: 12)
        #expect(throws: SystemError.self) {
            _ = try buffer.withUnsafeMutableBytes { try right.receiveExactly(into: $0) }
        }
    }

    @Test func eventfdCountsSignalsAndDrainsToNil() throws {
        let event = try EventFD()
        #expect(try event.drain() == nil)
        try event.signal()
        try event.signal()
        #expect(try event.drain() == 2)
        #expect(try event.drain() == nil)
    }

    @Test func epollReportsTheReadyTokenOnly() throws {
        let epoll = try Epoll()
        let first = try EventFD()
        let second = try EventFD()
        try epoll.add(first.rawValue, token: 11)
        try epoll.add(second.rawValue, token: 22)
        #expect(try epoll.wait(timeoutMilliseconds: 0) == 0)
        try second.signal()
        #expect(try epoll.wait(timeoutMilliseconds: 1000) == 1)
        #expect(epoll.token(at: 0) == 22)
        #expect(epoll.events(at: 0).contains(.readable))
        try epoll.remove(second.rawValue)
        #expect(try epoll.wait(timeoutMilliseconds: 0) == 0)
    }

    @Test func listenRefusesALiveSocketAndReplacesAStaleOne() throws {
        let path = "/tmp/vhost-system-test-\(getpid()).sock"
        defer { unlink(path) }
        do {
            let live = try UnixSocket.listen(path: path)
            #expect(throws: SystemError.self) { _ = try UnixSocket.listen(path: path) }
            _ = live
        }
        // The first listener is gone but its file remains: a stale socket is replaced.
        let replacement = try UnixSocket.listen(path: path)
        let client = try UnixSocket.connect(path: path)
        let accepted = try replacement.accept()
        #expect(accepted != nil)
        _ = client
    }

    @Test func mappingAtAnUnalignedOffsetIsRefused() throws {
        let memfd = try MemFD.create(name: "size", size: 4096)
        #expect(try memfd.size() == 4096)
        #expect(try memfd.isRegularFile())
        #expect(throws: SystemError.self) { _ = try MemoryMapping(descriptor: memfd, offset: 100, length: 4096) }
    }

    @Test func sealedMemfdCannotGrow() throws {
        let memfd = try MemFD.create(name: "sealed", size: 4096, allowSealing: true)
        try MemFD.sealSize(memfd)
        #expect(ftruncate(memfd.rawValue, 8192) != 0)
    }

    /// Pages of a shared mapping shown contiguously in another order: each page of the view is
    /// the source page it names (writes go both ways), and the view outlives the source mapping.
    @Test func aliasingViewShowsScatteredPagesContiguously() throws {
        let page = MemoryMapping.pageSize
        let memfd = try MemFD.create(name: "alias", size: UInt64(4 * page))
        var source: MemoryMapping? = try MemoryMapping(descriptor: memfd, offset: 0, length: UInt64(4 * page))
        let base = try #require(source).base
        for index in 0..<4 { (base + index * page).initializeMemory(as: UInt8.self, repeating: UInt8(index + 1), count: page) }
        let order = [3, 0, 2]
        let view = try MemoryMapping(aliasing: order.enumerated().map { slot, index in
            MemoryMapping.AliasedPiece(source: base + index * page, offset: slot * page, length: page)
        }, length: 3 * page)
        for (slot, index) in order.enumerated() {
            #expect((view.base + slot * page).load(fromByteOffset: page - 1, as: UInt8.self) == UInt8(index + 1))
        }
        view.base.storeBytes(of: 0xEE, toByteOffset: 5, as: UInt8.self)
        #expect(base.load(fromByteOffset: 3 * page + 5, as: UInt8.self) == 0xEE)
        source = nil
        #expect((view.base + page).load(as: UInt8.self) == 1)
    }

    @Test func aliasingViewRefusesPiecesThatDoNotTileIt() throws {
        let page = MemoryMapping.pageSize
        let memfd = try MemFD.create(name: "alias", size: UInt64(2 * page))
        let source = try MemoryMapping(descriptor: memfd, offset: 0, length: UInt64(2 * page))
        let whole = MemoryMapping.AliasedPiece(source: source.base, offset: 0, length: page)
        let cases: [([MemoryMapping.AliasedPiece], Int)] = [
            ([whole], 2 * page),                                                               // a gap at the end
            ([MemoryMapping.AliasedPiece(source: source.base + 16, offset: 0, length: page)], page), // unaligned source
            ([MemoryMapping.AliasedPiece(source: source.base, offset: 0, length: 100)], 100),    // not whole pages
            ([whole, whole], page),                                                            // overlapping
        ]
        for (pieces, length) in cases {
            #expect(throws: SystemError.self) { _ = try MemoryMapping(aliasing: pieces, length: length) }
        }
    }
}
