@testable import IOMMUModel

extension IOMMUModelFuzz {
    /// A `PinTracker` with a byte limit: pins on any range, releases (to the tracker that gave
    /// the token out, and to another one, which must refuse it and leave the pin held),
    /// invalidations (the mirror's INVALIDATEs as well as ranges of their own) against the pins.
    ///
    /// Checked against a `PinReference` after every operation: the same refusal or pin, the same
    /// outcome of an invalidation and the same invalidations completing on a release; pinned
    /// bytes, pin count, pending invalidations and per-byte counts at the range's edges equal to
    /// the reference's; the pinned bytes within the limit; the runs of pin counts canonical and
    /// their range store sound.
    struct PinHarness: ~Copyable {
        private var tracker: PinTracker
        /// Another tracker: each tracker's tokens are foreign to the other.
        private var stranger = PinTracker()
        private var strangerPins = 0
        private var reference: PinReference
        private var held: [HeldPin] = []

        static let limits: [UInt64] = [.max, 0, 1, 4096, 1 << 20, 1 << 63, 100]

        /// Configuration: one byte choosing the limit.
        init(_ operands: inout Operands) {
            let limit = Self.limits[Int(operands.byte()) % Self.limits.count]
            tracker = PinTracker(limit: limit)
            reference = PinReference(limit: limit)
        }

        /// Pins a range: half the time one already pinned (exact overlaps), otherwise any.
        mutating func pin(_ operands: inout Operands) {
            let reuse = operands.byte()
            let range = reuse & 1 == 0 && !held.isEmpty ? held[Int(reuse >> 1) % held.count].range : operands.range()
            let expected = reference.pin(range)
            do throws(PinError) {
                held.append(HeldPin(try tracker.pin(range)))
                require(expected == nil, "pin(\(describe(range))) pinned, the reference refuses: \(String(describing: expected))")
            } catch {
                require(error == expected, "pin(\(describe(range))) refused with \(error), the reference says \(String(describing: expected))")
            }
            check(range, completed: [], "pin(\(describe(range)))")
        }

        /// Releases a held pin to its tracker.
        mutating func release(_ operands: inout Operands) {
            let choice = Int(operands.byte())
            guard !held.isEmpty else { return }
            let box = held.remove(at: choice % held.count)
            guard let token = box.token.take() else { return }
            let expected = reference.release(box.range)
            do throws(PinError) {
                try tracker.release(token)
            } catch {
                fail("release of a pin of \(describe(box.range)) refused: \(error)")
            }
            check(box.range, completed: expected, "release(\(describe(box.range)))")
        }

        /// Releases a pin to the wrong tracker: one of the tracker's to the stranger, or one of
        /// the stranger's to the tracker. Refused; the pin stays held where it came from.
        mutating func releaseToTheWrongTracker(_ operands: inout Operands) {
            let choice = operands.byte()
            if choice & 1 == 0, !held.isEmpty {
                let box = held.remove(at: Int(choice >> 1) % held.count)
                guard let token = box.token.take() else { return }
                do throws(PinError) {
                    try stranger.release(token)
                    fail("the stranger released a pin of \(describe(box.range)) it never gave out")
                } catch {
                    require(error == .foreignToken, "a foreign release refused with \(error)")
                }
                check(box.range, completed: [], "foreign release(\(describe(box.range)))")
                return
            }
            let range = operands.range()
            do throws(PinError) {
                let token = try stranger.pin(range)
                strangerPins += 1
                do throws(PinError) {
                    try tracker.release(token)
                    fail("released a pin of \(describe(range)) the tracker never gave out")
                } catch {
                    require(error == .foreignToken, "a foreign release refused with \(error)")
                }
            } catch {
                // A tracker without a limit or invalidations refuses only what would take it
                // past 2^64 - 1 pinned bytes (its pins leaked into the tracker stay held).
                guard case .limitExceeded = error else { fail("the stranger refused \(describe(range)): \(error)") }
            }
            require(stranger.pinCount == strangerPins, "the stranger holds \(stranger.pinCount) pins, \(strangerPins) taken")
            check(range, completed: [], "foreign release of the stranger's \(describe(range))")
        }

        /// Asks to invalidate `range`.
        mutating func invalidate(_ range: ClosedRange<UInt64>) {
            let outcome = tracker.invalidate(range)
            let expected = reference.invalidate(range)
            require(outcome == expected, "invalidate(\(describe(range))) gave \(outcome), the reference \(expected)")
            check(range, completed: [], "invalidate(\(describe(range)))")
        }

        /// Releases every pin still held, oldest first.
        mutating func releaseAll() {
            while let box = held.first {
                held.removeFirst()
                guard let token = box.token.take() else { continue }
                let expected = reference.release(box.range)
                do throws(PinError) {
                    try tracker.release(token)
                } catch {
                    fail("final release of a pin of \(describe(box.range)) refused: \(error)")
                }
                check(box.range, completed: expected, "final release(\(describe(box.range)))")
            }
        }

        /// The tracker's state against the reference's, probed at `range`'s edges.
        private mutating func check(_ range: ClosedRange<UInt64>, completed expected: [InvalidationID], _ what: @autoclosure () -> String) {
            let completed = tracker.completedInvalidations()
            require(completed == expected, "\(what()): completed \(completed), the reference \(expected)")
            require(UInt128(tracker.pinnedBytes) == reference.pinnedBytes && tracker.pinnedBytes <= reference.limit,
                    "\(what()): \(tracker.pinnedBytes) bytes pinned, the reference \(reference.pinnedBytes), limit \(reference.limit)")
            require(tracker.pinCount == reference.pins.count, "\(what()): \(tracker.pinCount) pins, the reference \(reference.pins.count)")
            let pending = tracker.pendingInvalidations
            require(pending.count == reference.pending.count && zip(pending, reference.pending).allSatisfy { $0.rawValue == $1.id },
                    "\(what()): pending \(pending), the reference \(reference.pending)")
            for point in [range.lowerBound &- 1, range.lowerBound, range.upperBound, range.upperBound &+ 1] {
                require(tracker.pinCount(at: point) == reference.count(at: point),
                        "\(what()): \(tracker.pinCount(at: point)) pins at \(hex(point)), the reference \(reference.count(at: point))")
            }
            require(tracker.isPinned(range) == reference.isPinned(range), "\(what()): isPinned differs from the reference")
            let runs = tracker.pinRuns
            requireSound(runs, what())
            var previous: (range: ClosedRange<UInt64>, count: Int)?
            runs.forEach(intersecting: 0...UInt64.max) { run, value in
                require(value.count >= 1, "\(what()): a run of \(value.count) pins at \(describe(run))")
                if let previous {
                    require(previous.range.upperBound == .max || previous.range.upperBound + 1 != run.lowerBound
                                || previous.count != value.count,
                            "\(what()): touching runs with \(value.count) pins each at \(describe(run))")
                }
                previous = (run, value.count)
            }
        }
    }
}
