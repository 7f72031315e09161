import Foundation
import FuzzBodies
import Testing

/// Every committed fuzz input (seed corpora and crash regressions under Tests/Fuzz/Corpus)
/// runs through its fuzz body in the normal test suite: a fixed crash stays fixed.
@Suite("Fuzz corpora replayed")
struct CorpusReplayTests {
    static let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    /// Each fuzz target's directory, its body, and how many seeds it must at least have.
    static let targets: [(name: String, minimumSeeds: Int, body: @Sendable (UnsafeRawBufferPointer) -> Void)] = [
        ("message-decoder", 7, MessageDecoderFuzz.run),
        ("descriptor-chain", 11, DescriptorChainFuzz.run),
        ("block-request", 5, BlockRequestFuzz.run),
        ("iommu-model", 9, IOMMUModelFuzz.run),
    ]

    static func inputs(_ target: String) -> [String] {
        let directory = corpusRoot.appendingPathComponent(target).path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().map { directory + "/" + $0 }
    }

    @Test(arguments: targets.indices)
    func corpusReplays(_ index: Int) throws {
        let target = Self.targets[index]
        let inputs = Self.inputs(target.name)
        #expect(inputs.count >= target.minimumSeeds, "\(target.name): seed corpus missing")
        for path in inputs {
            let bytes = try #require(FuzzReplay.read(path), "\(path)")
            bytes.withUnsafeBytes(target.body)
        }
    }

    /// The dispatch body checks that the whole process holds no more descriptors, mappings and
    /// threads afterwards, which other suites running alongside would disturb: its corpus is
    /// replayed by the `fuzz-dispatch` executable (built next to this test binary) on its own.
    @Test func dispatchCorpusReplaysInItsOwnProcess() throws {
        let inputs = Self.inputs("dispatch")
        #expect(inputs.count >= 9, "dispatch: seed corpus missing")
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0])
        let replay = testBinary.deletingLastPathComponent().appendingPathComponent("fuzz-dispatch")
        let process = Process()
        process.executableURL = replay
        process.arguments = inputs
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(replay.path): \(text)")
        #expect(text.components(separatedBy: "\n").filter { $0.hasPrefix("ran ") }.count == inputs.count, "\(text)")
    }
}
