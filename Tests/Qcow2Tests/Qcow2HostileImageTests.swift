import Foundation
import Testing
@testable import Qcow2

/// The image file is untrusted: each row corrupts one thing in an image qemu-img made and names
/// the refusal expected, at open or when the corrupt metadata is reached. Nothing traps, nothing
/// is written through a bad table.
private func be64(_ value: UInt64) -> [UInt8] { (0..<8).map { (index: Int) -> UInt8 in UInt8(truncatingIfNeeded: value >> UInt64(56 - 8 * index)) } }
private func be32(_ value: UInt32) -> [UInt8] { (0..<4).map { (index: Int) -> UInt8 in UInt8(truncatingIfNeeded: value >> UInt32(24 - 8 * index)) } }

private func patch(_ offset: UInt64, _ bytes: [UInt8]) -> Qcow2HostileImageTests.Patch { (offset, bytes) }

@Suite struct Qcow2HostileImageTests {
    /// Where things are in the base image (read from its header).
    struct Layout {
        let l1: UInt64
        let refcountTable: UInt64
        let l2: UInt64
        let data: UInt64
    }

    enum Outcome: Sendable {
        /// Opening (read-only and read-write) fails with this kind of error.
        case refusedAtOpen(Kind)
        /// Read-only opens work; read-write opens fail with this kind.
        case refusedReadWrite(Kind)
        /// Opens; reading the first cluster fails (EIO), and so does writing it.
        case failsWhenReached
    }

    enum Kind: String, Sendable {
        case notQcow2, truncated, invalidHeader, unsupported, corrupt, backing

        func matches(_ error: Error) -> Bool {
            guard let error = error as? Qcow2Error else { return false }
            switch (self, error) {
            case (.notQcow2, .notQcow2), (.truncated, .truncated), (.invalidHeader, .invalidHeader),
                 (.unsupported, .unsupported), (.corrupt, .corrupt), (.backing, .backing):
                return true
            default:
                return false
            }
        }
    }

    typealias Patch = (offset: UInt64, bytes: [UInt8])

    struct Row: CustomTestStringConvertible, Sendable {
        let corruption: String
        let patches: @Sendable (Layout) -> [Patch]
        let outcome: Outcome
        var testDescription: String { corruption }
    }



    static let rows: [Row] = {
        var rows: [Row] = []
        rows.append(Row(corruption: "wrong magic", patches: { _ in [patch(0, [0x51, 0x46, 0x49, 0xfa])] }, outcome: .refusedAtOpen(.notQcow2)))
        rows.append(Row(corruption: "version 4", patches: { _ in [patch(4, be32(4))] }, outcome: .refusedAtOpen(.unsupported)))
        rows.append(Row(corruption: "cluster_bits 8", patches: { _ in [patch(20, be32(8))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "cluster_bits 22", patches: { _ in [patch(20, be32(22))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "header_length 100", patches: { _ in [patch(100, be32(100))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "header_length not a multiple of 8", patches: { _ in [patch(100, be32(108))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "refcount_order 7", patches: { _ in [patch(96, be32(7))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "AES encryption", patches: { _ in [patch(32, be32(1))] }, outcome: .refusedAtOpen(.unsupported)))
        rows.append(Row(corruption: "LUKS encryption", patches: { _ in [patch(32, be32(2))] }, outcome: .refusedAtOpen(.unsupported)))
        rows.append(Row(corruption: "unknown incompatible bit 5", patches: { _ in [patch(72, be64(1 << 5))] }, outcome: .refusedAtOpen(.unsupported)))
        rows.append(Row(corruption: "external data file bit", patches: { _ in [patch(72, be64(1 << 2))] }, outcome: .refusedAtOpen(.unsupported)))
        rows.append(Row(corruption: "compression type bit with zlib", patches: { _ in [patch(72, be64(1 << 3))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "virtual size 0", patches: { _ in [patch(24, be64(0))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "virtual size not a multiple of 512", patches: { _ in [patch(24, be64(1000))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "L1 too small for the size", patches: { _ in [patch(24, be64(1 << 40))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "L1 over 32 MiB", patches: { _ in [patch(36, be32(5 << 20))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "L1 offset unaligned", patches: { layout in [patch(40, be64(layout.l1 + 8))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "L1 in the header cluster", patches: { _ in [patch(40, be64(0))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "L1 past the end of the file", patches: { _ in [patch(40, be64(1 << 40))] }, outcome: .refusedAtOpen(.truncated)))
        rows.append(Row(corruption: "refcount table past the end", patches: { _ in [patch(48, be64(1 << 40))] }, outcome: .refusedAtOpen(.truncated)))
        rows.append(Row(corruption: "refcount table of 0 clusters", patches: { _ in [patch(56, be32(0))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "refcount table over 8 MiB", patches: { _ in [patch(56, be32(200))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "refcount table on the L1 table", patches: { layout in [patch(48, be64(layout.l1))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "backing name of 2000 bytes", patches: { _ in [patch(8, be64(512)), patch(16, be32(2000))] }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "backing name outside the header cluster", patches: { _ in [patch(8, be64(65530)), patch(16, be32(100))] },
            outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "header extension running past the cluster", patches: { _ in [patch(112, be32(0xe279_2aca) + be32(70000))] },
            outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "backing format extension twice", patches: { _ in
            [patch(112, be32(0xe279_2aca) + be32(3) + Array("raw\0\0\0\0\0".utf8) + be32(0xe279_2aca) + be32(3) + Array("raw\0\0\0\0\0".utf8) + be32(0) + be32(0))]
        }, outcome: .refusedAtOpen(.invalidHeader)))
        rows.append(Row(corruption: "encryption header extension", patches: { _ in [patch(112, be32(0x0537_be77) + be32(16) + [UInt8](repeating: 0, count: 16) + be32(0) + be32(0))] },
            outcome: .refusedAtOpen(.unsupported)))
        rows.append(Row(corruption: "L1 entry with reserved bits", patches: { layout in [patch(layout.l1, be64(layout.l2 | 0x1))] }, outcome: .refusedAtOpen(.corrupt)))
        rows.append(Row(corruption: "L1 entry unaligned", patches: { layout in [patch(layout.l1, be64((layout.l2 + 512) | 1 << 63))] }, outcome: .refusedAtOpen(.corrupt)))
        rows.append(Row(corruption: "L1 entry past the end", patches: { layout in [patch(layout.l1, be64(1 << 40 | 1 << 63))] }, outcome: .refusedAtOpen(.corrupt)))
        rows.append(Row(corruption: "L2 table on the L1 table", patches: { layout in [patch(layout.l1, be64(layout.l1 | 1 << 63))] }, outcome: .refusedAtOpen(.corrupt)))
        rows.append(Row(corruption: "L2 table on the refcount table", patches: { layout in [patch(layout.l1, be64(layout.refcountTable | 1 << 63))] },
            outcome: .refusedAtOpen(.corrupt)))
        rows.append(Row(corruption: "refcount block past the end", patches: { layout in [patch(layout.refcountTable, be64(1 << 40))] }, outcome: .refusedAtOpen(.corrupt)))
        rows.append(Row(corruption: "data cluster past the end", patches: { layout in [patch(layout.l2, be64(1 << 40 | 1 << 63))] }, outcome: .failsWhenReached))
        rows.append(Row(corruption: "data cluster on the L1 table", patches: { layout in [patch(layout.l2, be64(layout.l1 | 1 << 63))] }, outcome: .failsWhenReached))
        rows.append(Row(corruption: "data cluster on its own L2 table", patches: { layout in [patch(layout.l2, be64(layout.l2 | 1 << 63))] }, outcome: .failsWhenReached))
        rows.append(Row(corruption: "L2 entry with reserved bits", patches: { layout in [patch(layout.l2, be64(layout.data | 1 << 63 | 1 << 60))] }, outcome: .failsWhenReached))
        rows.append(Row(corruption: "L2 entry unaligned", patches: { layout in [patch(layout.l2, be64((layout.data + 512) | 1 << 63))] }, outcome: .failsWhenReached))
        rows.append(Row(corruption: "compressed cluster of garbage", patches: { layout in
            [patch(layout.l2, be64(1 << 62 | layout.data | 3 << 54)), patch(layout.data, [UInt8](repeating: 0xff, count: 4096))]
        }, outcome: .failsWhenReached))
        rows.append(Row(corruption: "corrupt bit", patches: { _ in [patch(72, be64(1 << 1))] }, outcome: .refusedReadWrite(.corrupt)))
        rows.append(Row(corruption: "dirty bit", patches: { _ in [patch(72, be64(1 << 0))] }, outcome: .refusedReadWrite(.corrupt)))
        rows.append(Row(corruption: "an internal snapshot", patches: { layout in [patch(60, be32(1)), patch(64, be64(layout.data))] }, outcome: .refusedReadWrite(.unsupported)))
        rows.append(Row(corruption: "backing file that is missing", patches: { _ in
            [patch(8, be64(0x200)), patch(16, be32(21)), patch(0x200, Array("/nonexistent/base.raw".utf8))]
        }, outcome: .refusedAtOpen(.backing)))
        rows.append(Row(corruption: "backing file with a protocol", patches: { _ in [patch(8, be64(0x200)), patch(16, be32(13)), patch(0x200, Array("nbd:host:1234".utf8))] },
            outcome: .refusedAtOpen(.backing)))
        rows.append(Row(corruption: "backing file that is the image itself", patches: { _ in
            [patch(8, be64(0x200)), patch(16, be32(9)), patch(0x200, Array("disk.qcow2".utf8.dropLast()) + Array("2".utf8)),
             patch(112, be32(0xe279_2aca) + be32(5) + Array("qcow2\0\0\0".utf8) + be32(0) + be32(0))]
        }, outcome: .refusedAtOpen(.backing)))
        rows.append(Row(corruption: "undeclared backing file that looks like qcow2", patches: { _ in
            [patch(8, be64(0x200)), patch(16, be32(10)), patch(0x200, Array("disk.qcow2".utf8))]
        }, outcome: .refusedAtOpen(.backing)))
        return rows
    }()

    @Test(arguments: rows)
    func refusesTheCorruption(_ row: Row) throws {
        let scratch = try Qcow2Scratch()
        let image = scratch.path("disk.qcow2")
        try scratch.qemuImg(["create", "-f", "qcow2", image, "4M"])
        try scratch.qemuIo(image, ["write -P 0x11 0 64k"])
        let header = try Self.bytes(of: image, at: 0, count: 112)
        let l1 = Self.value(header, 40)
        let l2Entry = Self.value(try Self.bytes(of: image, at: l1, count: 8), 0)
        let l2 = l2Entry & 0x00ff_ffff_ffff_fe00
        let layout = Layout(l1: l1, refcountTable: Self.value(header, 48), l2: l2,
                            data: Self.value(try Self.bytes(of: image, at: l2, count: 8), 0) & 0x00ff_ffff_ffff_fe00)
        let before = try Data(contentsOf: URL(fileURLWithPath: image))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
        for patch in row.patches(layout) {
            try handle.seek(toOffset: patch.offset)
            try handle.write(contentsOf: Data(patch.bytes))
        }
        try handle.close()
        switch row.outcome {
        case .refusedAtOpen(let kind):
            #expect(performing: { _ = try scratch.open(image, readOnly: true) }, throws: { kind.matches($0) })
            #expect(performing: { _ = try scratch.open(image, readOnly: false) }, throws: { kind.matches($0) })
        case .refusedReadWrite(let kind):
            let disk = try scratch.open(image, readOnly: true)
            #expect(try disk.readAll(chunk: 65536).prefix(65536).allSatisfy { $0 == 0x11 })
            #expect(performing: { _ = try scratch.open(image, readOnly: false) }, throws: { kind.matches($0) })
        case .failsWhenReached:
            let reader = try scratch.open(image, readOnly: true)
            var buffer = [UInt8](repeating: 0, count: 4096)
            let read = buffer.withUnsafeMutableBytes { raw -> Int32 in
                var vector = iovec(iov_base: raw.baseAddress, iov_len: 4096)
                return reader.read(&vector, count: 1, offset: 0, length: 4096)
            }
            #expect(read == EIO)
            let writer = try scratch.open(image, readOnly: false)
            #expect(writer.write([UInt8](repeating: 0x22, count: 4096), at: 0) == EIO)
        }
        // Whatever was refused, the metadata is as the corruption left it, or marked corrupt.
        let after = try Data(contentsOf: URL(fileURLWithPath: image))
        #expect(after.count == before.count, "the image grew")
    }

    static func bytes(of path: String, at offset: UInt64, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        return Array(try handle.read(upToCount: count) ?? Data())
    }

    static func value(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        bytes[offset..<(offset + 8)].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
