#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import VhostUserBlkBench

/// `vhost-user-blk-bench compare`: our daemon against qemu-storage-daemon, same front end.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Benchmark our daemon against qemu-storage-daemon in one invocation.",
        discussion: """
            Runs issue 5's cases (null disk; tmpfs image: 4k randread QD1 and QD32, 4k randwrite \
            QD32, 4 queues QD32, 64k seqread) and issue 12's (4k sequential reads and writes QD32 \
            from qemu-img bench through libblkio, with --qemu-img) on both back ends, alternating, \
            each run on a fresh back end, and prints medians and ratios. With --write-doc it replaces the comparison \
            section of that markdown file and writes the SVG plot beside it.
            """)

    @Option(help: "Our daemon's executable (use a release build).")
    var daemon: String = ".build/release/vhost-user-blk"

    @Option(help: "qemu-storage-daemon's executable.")
    var qsd: String = "/usr/bin/qemu-storage-daemon"

    @Option(help: "qemu-img with QEMU's libblkio driver (Debian 13's) for the libblkio cases; without it they are left out.")
    var qemuImg: String?

    @Option(help: "Runs per back end and case.")
    var repetitions: Int = 3

    @Option(help: "Seconds per run.")
    var runtime: Double = 5

    @Option(help: "A tmpfs directory for the image and sockets.")
    var directory: String = "/dev/shm"

    @Option(help: "A directory on the machine's disk (not tmpfs) for the disk cases' image; without it they are left out.")
    var diskDirectory: String?

    @Option(help: "Size of the disk cases' image, in GiB.")
    var diskImageGiB: Int = 4

    @Option(help: "fio, the reference for the disk cases.")
    var fio: String = "/usr/bin/fio"

    @Option(help: "Only the cases whose name contains this text.")
    var only: String?

    @Option(help: "Markdown file whose comparison section to replace (e.g. docs/benchmarks.md).")
    var writeDoc: String?

    @Option(help: "The command to quote as the way to rerun, in the document.")
    var rerunCommand: String = "make bench"

    @Flag(help: "Print the samples as JSON after the table.")
    var json = false

    func run() throws {
        guard repetitions >= 1, runtime > 0 else { throw ValidationError("--repetitions and --runtime must be positive") }
        let workDirectory = directory + "/vhost-user-blk-compare-\(getpid())"
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        var cases = ComparisonCase.standard(seconds: runtime)
        if qemuImg == nil { cases = cases.filter { $0.frontEnd == .bench } }
        if diskDirectory == nil { cases = cases.filter { !$0.onDisk } }
        if let only { cases = cases.filter { $0.name.contains(only) } }
        guard !cases.isEmpty else { throw ValidationError("no case matches --only '\(only ?? "")'") }
        var runner = ComparisonRunner(ourDaemon: daemon, qemuStorageDaemon: qsd, cases: cases,
                                      repetitions: repetitions, directory: workDirectory)
        runner.qemuImg = qemuImg
        runner.diskDirectory = diskDirectory
        runner.diskImageBytes = UInt64(max(diskImageGiB, 1)) << 30
        runner.fio = fio
        runner.machine = Self.machine(qsd: qsd)
        runner.command = rerunCommand
        let result: BackEndComparison
        do {
            result = try runner.run { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        } catch {
            FileHandle.standardError.write(Data("vhost-user-blk-bench compare: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let plotName = "benchmarks-compare.svg"
        let document = ComparisonDocument(result: result, plotName: plotName)
        print(document.markdown)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        }
        if let writeDoc {
            let existing = (try? String(contentsOfFile: writeDoc, encoding: .utf8)) ?? "# Benchmarks\n"
            try document.merged(into: existing).write(toFile: writeDoc, atomically: true, encoding: .utf8)
            let plotPath = URL(fileURLWithPath: writeDoc).deletingLastPathComponent().appendingPathComponent(plotName).path
            try document.svg.write(toFile: plotPath, atomically: true, encoding: .utf8)
            FileHandle.standardError.write(Data("wrote \(writeDoc) and \(plotPath)\n".utf8))
        }
    }

    /// CPU model, CPU count, memory, kernel, q-s-d version, date and commit, as one line.
    static func machine(qsd: String) -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let memoryKiB = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal") }?
            .split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
        var name = utsname()
        uname(&name)
        let kernel = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let version = output(of: [qsd, "--version"]).split(separator: "\n").first.map(String.init) ?? "?"
        let commit = output(of: ["/usr/bin/git", "rev-parse", "--short", "HEAD"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return "\(model), \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs, \(Int(memoryKiB / 1_048_576)) GiB RAM, Linux \(kernel); "
            + "\(version); \(formatter.string(from: Date()))" + (commit.isEmpty ? "" : ", commit \(commit)")
    }

    private static func output(of arguments: [String]) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return "" }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
