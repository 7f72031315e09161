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
        ("dispatch", 9, DispatchFuzz.run),
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
}
