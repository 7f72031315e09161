import Foundation
import FuzzBodies
import Testing

/// Every committed fuzz input (seed corpora and crash regressions under Tests/Fuzz/Corpus)
/// runs through its fuzz body in the normal test suite: a fixed crash stays fixed.
@Suite("Fuzz corpora replayed")
struct CorpusReplayTests {
    static let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    static func inputs(_ target: String) -> [String] {
        let directory = corpusRoot.appendingPathComponent(target).path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().map { directory + "/" + $0 }
    }

    @Test func messageDecoderCorpus() throws {
        let inputs = Self.inputs("message-decoder")
        #expect(inputs.count >= 7, "seed corpus missing")
        for path in inputs {
            let bytes = try #require(FuzzReplay.read(path), "\(path)")
            bytes.withUnsafeBytes(MessageDecoderFuzz.run)
        }
    }
}
