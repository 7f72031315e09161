@testable import IOMMUModel

/// The checks the harnesses share, and how a disagreement is reported: a `fatalError` saying
/// what differed, which libFuzzer reports as a crash with the input that led to it.
extension IOMMUModelFuzz {
    static func fail(_ message: String) -> Never {
        fatalError("IOMMUModelFuzz: \(message)")
    }

    /// The message is only built when the condition fails.
    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fail(message()) }
    }

    /// A translation answered `answer` into `segments`; the reference says `expected`.
    static func requireTranslation(_ answer: IOTLBTranslation, _ segments: UnsafeMutableBufferPointer<IOTLBSegment>,
                                   _ expected: (IOTLBTranslation, [IOTLBSegment]), _ what: @autoclosure () -> String) {
        var same = answer == expected.0
        if same, case .translated(let count) = answer {
            same = count <= segments.count && (0..<count).allSatisfy { segments[$0] == expected.1[$0] }
        }
        if !same {
            let written: [IOTLBSegment]
            if case .translated(let count) = answer, count <= segments.count { written = Array(segments.prefix(count)) } else { written = [] }
            fail("\(what()): answered \(answer) \(written), the reference \(expected.0) \(expected.1)")
        }
    }

    /// The B+ tree under one of the model's range stores is sound.
    static func requireSound<Value>(_ store: RangeStore<Value>, _ what: @autoclosure () -> String) {
        let violations = store.invariantViolations()
        require(violations.isEmpty, "\(what()): range store broken: \(violations.prefix(3))")
    }

    /// The model's IOTLB entries are exactly the reference's (same ranges, addresses, permissions).
    static func requireSameEntries(_ store: RangeStore<IOTLBEntry>, _ reference: RangeReference<IOTLBEntry>,
                                   _ what: @autoclosure () -> String) {
        var index = 0
        var same = store.count == reference.count
        if same {
            store.forEach(intersecting: 0...UInt64.max) { range, value in
                if index >= reference.count || reference.entries[index].range != range || reference.entries[index].value != value {
                    same = false
                }
                index += 1
            }
        }
        if !same {
            fail("\(what()): entries \(RangeReference(store).entries.prefix(8)) differ from the reference \(reference.entries.prefix(8))")
        }
    }

    /// The model's IOTLB entries map the same bytes as the reference's, however either splits
    /// its mappings into entries.
    static func requireSameMappings(_ store: RangeStore<IOTLBEntry>, _ reference: RangeReference<IOTLBEntry>,
                                    _ what: @autoclosure () -> String) {
        let actual = RangeReference(store).merged(RangeReference.continues)
        let expected = reference.merged(RangeReference.continues)
        let same = actual.count == expected.count
            && zip(actual, expected).allSatisfy { $0.range == $1.range && $0.value == $1.value }
        require(same, "\(what()): mappings \(actual.prefix(8)) differ from the reference \(expected.prefix(8))")
    }

    /// An address or size as the messages print it.
    static func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }

    static func describe(_ range: ClosedRange<UInt64>) -> String { "\(hex(range.lowerBound))...\(hex(range.upperBound))" }
}
