import Foundation
import Testing
@testable import Qcow2

/// Reading images qemu-img and qemu-io made: what we read is what qemu-img reads.
@Suite struct Qcow2ReadTests {
    /// qemu-io writes patterns at places that cover partial clusters, whole clusters, zeroed
    /// clusters and gaps; our read of the whole disk equals qemu-img's.
    @Test(arguments: [
        ["-o", "cluster_size=4096"], ["-o", "cluster_size=65536"], ["-o", "cluster_size=2097152"],
        ["-o", "compat=0.10"], ["-o", "extended_l2=on"], ["-o", "extended_l2=on,cluster_size=2097152"],
        ["-o", "refcount_bits=1"], ["-o", "refcount_bits=64"], ["-o", "preallocation=metadata"],
    ])
    func readsWhatQemuWrote(options: [String]) throws {
        let scratch = try Qcow2Scratch()
        let image = scratch.path("disk.qcow2")
        try scratch.qemuImg(["create", "-f", "qcow2"] + options + [image, "8M"])
        try scratch.qemuIo(image, [
            "write -P 0x11 0 4k", "write -P 0x22 60k 8k", "write -P 0x33 1M 1M", "write -z 1200k 64k",
            "write -P 0x44 3000k 3k", "write -P 0x55 8188k 4k",
        ])
        let disk = try scratch.open(image, readOnly: true)
        #expect(disk.virtualSize == 8 << 20)
        #expect(try disk.readAll() == scratch.contents(of: image))
        // Small reads, crossing clusters at odd places, agree too.
        let reference = try scratch.contents(of: image)
        var random = TestRandom(state: 7)
        for _ in 0..<200 {
            let offset = random.below((8 << 20) / 512 - 64) * 512
            let length = (random.below(63) + 1) * 512
            var bytes = [UInt8](repeating: 0xee, count: length)
            let result = bytes.withUnsafeMutableBytes { raw -> Int32 in
                var vector = iovec(iov_base: raw.baseAddress, iov_len: length)
                return disk.read(&vector, count: 1, offset: UInt64(offset), length: length)
            }
            #expect(result == 0)
            #expect(bytes[...] == reference[offset..<(offset + length)])
        }
    }

    /// `qemu-img convert -c`: compressed clusters (zlib and zstd) read back as the source.
    @Test(arguments: ["zlib", "zstd"])
    func readsCompressedClusters(compression: String) throws {
        let scratch = try Qcow2Scratch()
        let raw = scratch.path("source.raw")
        var random = TestRandom(state: 11)
        // Compressible text with random runs, and a random (incompressible) stretch.
        var source = [UInt8]()
        while source.count < 4 << 20 {
            source += Array("the quick brown fox \(random.next() % 1000) jumps over the lazy dog\n".utf8)
            if random.below(50) == 0 { source += random.bytes(3000) }
        }
        source = Array(source.prefix(4 << 20))
        source.replaceSubrange((1 << 20)..<(1 << 20) + 200_000, with: random.bytes(200_000))
        try Data(source).write(to: URL(fileURLWithPath: raw))
        let image = scratch.path("compressed.qcow2")
        try scratch.qemuImg(["convert", "-c", "-O", "qcow2", "-o", "compression_type=\(compression)", raw, image])
        let disk = try scratch.open(image, readOnly: true)
        #expect(try disk.readAll(chunk: 12288) == source)
    }

    /// A chain of three (raw base, qcow2 middle, qcow2 top), named relatively as qemu-img
    /// records them: each layer shows through where the ones above have nothing.
    @Test func readsThroughABackingChain() throws {
        let scratch = try Qcow2Scratch()
        let base = scratch.path("base.raw")
        try Data(TestRandomBytes(state: 3, count: 4 << 20)).write(to: URL(fileURLWithPath: base))
        let middle = scratch.path("middle.qcow2")
        let top = scratch.path("top.qcow2")
        try scratch.qemuImg(["create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", middle, "6M"])
        try scratch.qemuIo(middle, ["write -P 0x66 512k 128k", "write -z 2M 64k"])
        try scratch.qemuImg(["create", "-f", "qcow2", "-b", "middle.qcow2", "-F", "qcow2", top, "8M"])
        try scratch.qemuIo(top, ["write -P 0x77 540k 4k", "write -P 0x78 5M 1M"])
        let disk = try scratch.open(top, readOnly: true)
        #expect(try disk.readAll() == scratch.contents(of: top))
        #expect(disk.chain.count == 3)
    }

    /// Reads straight through the image's file when a request lies in one run: the mapping
    /// points at the data qemu-io wrote.
    @Test func directMappingPointsAtTheData() throws {
        let scratch = try Qcow2Scratch()
        let image = scratch.path("disk.qcow2")
        try scratch.qemuImg(["create", "-f", "qcow2", image, "4M"])
        try scratch.qemuIo(image, ["write -P 0x5a 128k 64k"])
        let disk = try scratch.open(image, readOnly: false)
        let mapping = try #require(disk.directMapping(offset: 128 << 10 + 4096, length: 4096, forWrite: true))
        var bytes = [UInt8](repeating: 0, count: 4096)
        #expect(pread(mapping.descriptor, &bytes, 4096, off_t(mapping.offset)) == 4096)
        #expect(bytes.allSatisfy { $0 == 0x5a })
        // Unallocated and spanning requests are served by read and write instead.
        #expect(disk.directMapping(offset: 0, length: 4096, forWrite: false) == nil)
        #expect(disk.directMapping(offset: 128 << 10 + 60 << 10, length: 8192, forWrite: false) == nil)
    }
}

func TestRandomBytes(state: UInt64, count: Int) -> [UInt8] {
    var random = TestRandom(state: state)
    return random.bytes(count)
}
