import Testing
@testable import VhostUserBackend

@Suite("Pins of requests in flight")
struct InFlightPinsTests {
    private static func pin(_ pins: inout InFlightPins, head: UInt16, _ ranges: [ClosedRange<UInt64>]) -> Bool {
        ranges.withUnsafeBufferPointer { pins.pin(head: head, ranges: $0) }
    }

    private static func answered(_ completion: CommandCompletion) -> Bool {
        completion.wait(milliseconds: 0) != nil
    }

    @Test("an INVALIDATE waits for the requests whose ranges it overlaps, and only for them")
    func invalidationWaitsForOverlappingPins() {
        var pins = InFlightPins(queueSize: 8)
        #expect(Self.pin(&pins, head: 1, [0x1000...0x100f, 0x8000...0x8fff, 0x2000...0x2000]))
        #expect(Self.pin(&pins, head: 2, [0x1_0000...0x1_0fff]))
        let overlapping = CommandCompletion()
        pins.invalidate(0x8800...0x97ff, acknowledging: overlapping)
        let disjoint = CommandCompletion()
        pins.invalidate(0x3000...0x7fff, acknowledging: disjoint)
        #expect(!Self.answered(overlapping))
        #expect(Self.answered(disjoint))
        #expect(pins.waitingInvalidations == 1)
        // No new request may start on the range being removed; elsewhere it may.
        #expect(!Self.pin(&pins, head: 3, [0x9000...0x9fff]))
        #expect(Self.pin(&pins, head: 4, [0xa000...0xafff]))
        pins.release(head: 2)
        #expect(!Self.answered(overlapping))
        pins.release(head: 1)
        #expect(Self.answered(overlapping))
        #expect(pins.waitingInvalidations == 0)
        #expect(Self.pin(&pins, head: 3, [0x9000...0x9fff]))
        pins.release(head: 3)
        pins.release(head: 4)
        #expect(pins.pinCount == 0)
    }

    @Test("a head out of the ring, a head already pinned or too many ranges pin nothing")
    func refusals() {
        var pins = InFlightPins(queueSize: 4)
        #expect(!Self.pin(&pins, head: 4, [0...1]))
        #expect(Self.pin(&pins, head: 0, [0...1]))
        #expect(!Self.pin(&pins, head: 0, [2...3]))
        #expect(!Self.pin(&pins, head: 1, (0..<5).map { UInt64($0 * 16)...UInt64($0 * 16 + 1) }))
        #expect(pins.pinCount == 1)
        pins.release(head: 1)  // holds nothing: nothing happens
        #expect(pins.pinCount == 1)
    }
}
