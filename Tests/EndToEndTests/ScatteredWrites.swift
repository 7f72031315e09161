import Foundation
import Testing

/// The byte-exact check several guest tests share: the guest writes patterns at scattered
/// offsets (sector-aligned, page-aligned, 512 B to 1 MiB, up to the last sector), reads each back
/// and compares, and reads data the host put in the image; afterwards the host finds every
/// pattern in the image file.
struct ScatteredWrites {
    typealias H = GuestHarness

    static let imageSize = 64 << 20
    static let writes: [(offset: Int, size: Int)] = [
        (0, 4096), (3 * 4096 + 512, 512), (1 << 20, 64 << 10), (7 << 20 | 4096, 128 << 10),
        (33 << 20, 1 << 20), ((64 << 20) - 8192, 8192),
    ]
    static let hostDataOffset = 40 << 20
    static let hostData = H.pattern(count: 256 << 10, seed: 99)

    let image: String

    /// Creates the image (with the host's data in it) and the pattern files in `scratch`, and
    /// returns the workload's lines. With `cpus` > 1, writes alternate CPUs (taskset) so every
    /// queue the guest uses carries requests.
    static func prepare(in scratch: H.Scratch, cpus: Int = 1) throws -> (ScatteredWrites, workload: String) {
        let image = scratch.path("disk.img")
        try H.makeImage(at: image, size: imageSize)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
        try handle.seek(toOffset: UInt64(hostDataOffset))
        try handle.write(contentsOf: Data(hostData))
        try handle.close()
        try H.write(hostData, to: scratch.path("host"))
        var workload = ""
        for (index, write) in writes.enumerated() {
            try H.write(H.pattern(count: write.size, seed: UInt64(index + 1)), to: scratch.path("p\(index)"))
            let pin = cpus > 1 ? "taskset \(1 << (index % cpus)) " : ""
            workload += """
                \(pin)blktool pwrite $GUEST_DISK \(write.offset) /data/p\(index)
                \(pin)blktool pread $GUEST_DISK \(write.offset) \(write.size) /tmp/r\(index)
                cmp /data/p\(index) /tmp/r\(index)
                echo "GUEST-NOTE: verified \(index)"

                """
        }
        workload += """
            blktool pread $GUEST_DISK \(hostDataOffset) \(hostData.count) /tmp/host
            cmp /data/host /tmp/host
            echo "GUEST-NOTE: host data verified"

            """
        return (ScatteredWrites(image: image), workload)
    }

    /// Checks the guest's notes and, from the host, the image.
    func verify(_ result: H.Result) throws {
        #expect(result.exitCode == 0, "\(result.output)")
        #expect(result.notes.contains("host data verified"))
        for (index, write) in Self.writes.enumerated() {
            #expect(result.notes.contains("verified \(index)"))
            let onDisk = try H.read(image, offset: write.offset, count: write.size)
            #expect(H.difference(onDisk, H.pattern(count: write.size, seed: UInt64(index + 1))) == nil,
                    "write \(index) at \(write.offset)")
        }
    }
}
