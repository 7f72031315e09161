import Foundation
import Testing
@testable import Qcow2

/// Writing: after our writes, zeroes and discards, `qemu-img check` finds no errors and qemu-img
/// reads what a plain byte array given the same operations holds.
@Suite struct Qcow2WriteTests {
    struct Case: CustomStringConvertible, Sendable {
        let name: String
        /// qemu-img create options for the image written to.
        let options: [String]
        /// Make a backing file (raw or qcow2, with data) and create the image over it.
        var backing: String? = nil
        /// Make the image by `qemu-img convert -c` of random text instead of create.
        var compressed = false
        var direct = false
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "64k", options: []),
        Case(name: "4k", options: ["-o", "cluster_size=4096"]),
        Case(name: "2M", options: ["-o", "cluster_size=2097152"]),
        Case(name: "512 B, 1-bit refcounts", options: ["-o", "cluster_size=512,refcount_bits=1"]),
        Case(name: "512 B, 64-bit refcounts", options: ["-o", "cluster_size=512,refcount_bits=64"]),
        Case(name: "version 2", options: ["-o", "compat=0.10"]),
        Case(name: "preallocation=metadata", options: ["-o", "preallocation=metadata"]),
        Case(name: "preallocation=full", options: ["-o", "preallocation=full"]),
        Case(name: "over a qcow2 base", options: [], backing: "qcow2"),
        Case(name: "version 2 over a raw base", options: ["-o", "compat=0.10"], backing: "raw"),
        Case(name: "compressed", options: [], compressed: true),
        Case(name: "O_DIRECT, over a raw base", options: [], backing: "raw", direct: true),
    ]

    static let diskSize = 6 << 20

    @Test(arguments: cases)
    func writesLeaveAConsistentImage(_ testCase: Case) throws {
        let scratch = try Qcow2Scratch(under: testCase.direct ? "/var/tmp" : NSTemporaryDirectory())
        let image = scratch.path("disk.qcow2")
        var random = TestRandom(state: 0x5eed)
        if let backing = testCase.backing {
            let raw = scratch.path("base.raw")
            try Data(random.bytes(4 << 20)).write(to: URL(fileURLWithPath: raw))
            let base = backing == "raw" ? "base.raw" : "base.qcow2"
            if backing == "qcow2" { try scratch.qemuImg(["convert", "-O", "qcow2", raw, scratch.path(base)]) }
            try scratch.qemuImg(["create", "-f", "qcow2", "-b", base, "-F", backing] + testCase.options + [image, "\(Self.diskSize)"])
        } else if testCase.compressed {
            let raw = scratch.path("source.raw")
            var text = [UInt8]()
            while text.count < Self.diskSize { text += Array("line \(random.next() % 97) of a compressible disk\n".utf8) }
            try Data(text.prefix(Self.diskSize)).write(to: URL(fileURLWithPath: raw))
            try scratch.qemuImg(["convert", "-c", "-O", "qcow2", raw, image])
        } else {
            try scratch.qemuImg(["create", "-f", "qcow2"] + testCase.options + [image, "\(Self.diskSize)"])
        }
        var model = try scratch.contents(of: image)
        let info = try scratch.qemuImg(["info", image])
        let version3 = !info.contains("compat: 0.10")
        let clusterSize = try #require(info.split(separator: "\n").first { $0.hasPrefix("cluster_size:") }
            .flatMap { Int($0.split(separator: " ").last ?? "") })
        do {
            let disk = try scratch.open(image, readOnly: false, direct: testCase.direct)
            for step in 0..<150 {
                let sectors = random.below(3) == 0 ? random.below(300) + 1 : random.below(16) + 1
                let offset = random.below(Self.diskSize / 512 - sectors) * 512
                let length = sectors * 512
                switch random.below(10) {
                case 0..<7:
                    let bytes = random.bytes(length)
                    let cut = random.below(2) == 0 ? random.below(length) : nil
                    #expect(disk.write(bytes, at: UInt64(offset), splitAt: cut) == 0, "step \(step): write")
                    model.replaceSubrange(offset..<(offset + length), with: bytes)
                case 7, 8:
                    #expect(disk.writeZeroes(offset: UInt64(offset), length: UInt64(length), unmap: random.below(2) == 0) == 0,
                            "step \(step): write zeroes")
                    model.replaceSubrange(offset..<(offset + length), with: repeatElement(0, count: length))
                default:
                    #expect(disk.discard(offset: UInt64(offset), length: UInt64(length)) == 0, "step \(step): discard")
                    // Whole clusters read as zeroes after, where the format can say so.
                    if version3 || testCase.backing == nil {
                        let first = (offset + clusterSize - 1) / clusterSize * clusterSize
                        let last = (offset + length) / clusterSize * clusterSize
                        if first < last { model.replaceSubrange(first..<last, with: repeatElement(0, count: last - first)) }
                    }
                }
            }
            #expect(try disk.readAll() == model)
            #expect(disk.flush() == 0)
        }
        let check = try scratch.check(image)
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("No errors were found"), "\(check.output)")
        #expect(try scratch.contents(of: image) == model)
    }

    /// 512-byte clusters with 64-bit refcounts: a refcount block covers 64 clusters and a
    /// table cluster 64 blocks, so filling a few MiB grows the refcount table several times.
    @Test func refcountTableGrowsAndStaysConsistent() throws {
        let scratch = try Qcow2Scratch()
        let image = scratch.path("disk.qcow2")
        try scratch.qemuImg(["create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", image, "16M"])
        var random = TestRandom(state: 99)
        let data = random.bytes(12 << 20)
        do {
            let disk = try scratch.open(image, readOnly: false)
            var offset = 0
            while offset < data.count {
                #expect(disk.write(Array(data[offset..<(offset + 65536)]), at: UInt64(offset)) == 0)
                offset += 65536
            }
        }
        let check = try scratch.check(image)
        #expect(check.output.contains("No errors were found"), "\(check.output)")
        let contents = try scratch.contents(of: image)
        #expect(contents[..<data.count] == data[...])
        let header = try Data(contentsOf: URL(fileURLWithPath: image)).prefix(64)
        let tableClusters = header[56..<60].reduce(0) { $0 << 8 | Int($1) }
        #expect(tableClusters > 1, "the refcount table did not grow")
    }

    /// The image a daemon grew is one QEMU's own tools read and keep writing.
    @Test func qemuKeepsWritingAnImageWeWrote() throws {
        let scratch = try Qcow2Scratch()
        let image = scratch.path("disk.qcow2")
        try scratch.qemuImg(["create", "-f", "qcow2", image, "4M"])
        do {
            let disk = try scratch.open(image, readOnly: false)
            #expect(disk.write([UInt8](repeating: 0xa1, count: 192 << 10), at: 64 << 10) == 0)
        }
        try scratch.qemuIo(image, ["read -P 0xa1 64k 192k", "write -P 0xb2 100k 4k", "read -P 0xb2 100k 4k", "read -P 0 0 64k"])
        #expect(try scratch.check(image).status == 0)
    }
}
