import IOMMUModel

extension IOMMUModelFuzz {
    /// What the daemon keeps per connection: the IOTLB with its entry limit and its page-table
    /// mirror (`IOPageTableMirror`, here with a pool of a few tables so that it runs out), fed
    /// with UPDATEs and INVALIDATEs, translated directly and through both last-hit caches.
    ///
    /// Checked against a `RangeReference` of IOTLB entries after every message: the same error
    /// (in the documented order, the entry limit included) or the same entries; a new generation
    /// exactly when something was applied; a sound range store and page table; every page-table
    /// leaf agreeing with the reference on every byte; an UPDATE the page table can hold either
    /// mirrored or counted as unmirrored, and one it cannot hold counted; translations (mirror,
    /// IOTLB alone, page table where it answers, both caches, a snapshot of an earlier state
    /// through the same caches) equal to the reference's.
    struct MirrorHarness {
        private(set) var mirror: IOPageTableMirror
        private var reference = RangeReference<IOTLBEntry>()
        /// The limit the IOTLB must enforce (a negative limit counts as 0).
        let entryLimit: Int
        /// The pool size the page table must keep to (a limit below 1 counts as 1).
        let tableLimit: Int
        private var iotlbCache = IOTLBCache()
        private var mirrorCache = IOPageTableMirrorCache()
        /// An earlier state, translated through the same caches (which must never answer from
        /// the current one).
        private var snapshot: (mirror: IOPageTableMirror, reference: RangeReference<IOTLBEntry>)?

        static let entryLimits = [0, 1, 2, 3, 5, 8, 2048, Int.max, -3]

        /// Configuration: one byte choosing the entry limit, one the table limit (-1...8) and
        /// the tables preallocated (0...3).
        init(_ operands: inout Operands) {
            let requested = Self.entryLimits[Int(operands.byte()) % Self.entryLimits.count]
            let tables = operands.byte()
            let requestedTables = Int(tables % 10) - 1
            mirror = IOPageTableMirror(iotlbEntryLimit: requested, tableLimit: requestedTables,
                                       preallocatedTables: Int((tables >> 4) % 4))
            entryLimit = max(requested, 0)
            tableLimit = max(requestedTables, 1)
            require(mirror.iotlb.entryLimit == entryLimit, "entry limit \(requested) kept as \(mirror.iotlb.entryLimit)")
            require(mirror.pageTable.tableLimit == tableLimit, "table limit \(requestedTables) kept as \(mirror.pageTable.tableLimit)")
        }

        /// An UPDATE (directly or as a message) with any operands.
        mutating func update(_ operands: inout Operands, scratch: UnsafeMutableBufferPointer<IOTLBSegment>) {
            let iova = operands.address()
            let size = operands.size(from: iova)
            // Half the time an offset from the IOVA, so that IOVA and user address share their
            // alignment and huge leaves become possible.
            let userAddress = operands.flag() ? iova &+ operands.address() : operands.address()
            let permission = operands.permission()
            let asMessage = operands.flag()
            let what = { "update(iova: \(hex(iova)), size: \(hex(size)), userAddress: \(hex(userAddress)), permission: \(permission.rawValue))" }
            let expected = reference.update(iova: iova, size: size, userAddress: userAddress, permission: permission,
                                            entryLimit: entryLimit)
            let generation = mirror.iotlb.generation
            let unmirrored = mirror.unmirroredUpdates
            var error: IOTLBError?
            do throws(IOTLBError) {
                if asMessage {
                    try mirror.apply(.update(iova: iova, size: size, userAddress: userAddress, permission: permission))
                } else {
                    try mirror.update(iova: iova, size: size, userAddress: userAddress, permission: permission)
                }
            } catch let refusal {
                error = refusal
            }
            require(error == expected.error, "\(what()): threw \(String(describing: error)), the reference \(String(describing: expected.error))")
            if error == nil {
                reference = expected.stored
                require(mirror.iotlb.generation != generation, "\(what()): accepted without a new generation")
                checkMirrored(iova: iova, size: size, userAddress: userAddress, permission: permission,
                              newlyUnmirrored: mirror.unmirroredUpdates - unmirrored, what())
            } else {
                require(mirror.iotlb.generation == generation && mirror.unmirroredUpdates == unmirrored,
                        "\(what()): refused, but the generation or the unmirrored count changed")
            }
            checkState(what())
            probe(around: iova, size: size, scratch: scratch)
        }

        /// An INVALIDATE (directly or as a message); returns the bytes it unmapped.
        mutating func invalidate(_ operands: inout Operands, scratch: UnsafeMutableBufferPointer<IOTLBSegment>) -> ClosedRange<UInt64> {
            let iova = operands.address()
            let size = operands.size(from: iova)
            let what = { "invalidate(iova: \(hex(iova)), size: \(hex(size)))" }
            let generation = mirror.iotlb.generation
            if operands.flag() {
                try? mirror.apply(.invalidate(iova: iova, size: size))  // an INVALIDATE never throws
            } else {
                mirror.invalidate(iova: iova, size: size)
            }
            let range = reference.invalidatedRange(iova: iova, size: size, entryLimit: entryLimit)
            reference.erase(range)
            require(mirror.iotlb.generation != generation, "\(what()): no new generation")
            checkState(what())
            probe(around: iova, size: size, scratch: scratch)
            return range
        }

        /// A buffer of any length, translated every way, then a buffer a few bytes further
        /// (often a cache hit).
        mutating func translate(_ operands: inout Operands, scratch: UnsafeMutableBufferPointer<IOTLBSegment>) {
            let iova = operands.address()
            let length = operands.size(from: iova)
            let access = operands.access()
            let capacity = Int(operands.byte()) % (scratch.count + 1)
            let nearby = iova &+ UInt64(operands.byte())
            compareTranslations(iova: iova, length: length, access: access, capacity: capacity, scratch: scratch)
            compareTranslations(iova: nearby, length: length, access: access, capacity: capacity, scratch: scratch)
        }

        /// Takes a snapshot of the current state, or translates the snapshot through the caches
        /// the current state uses.
        mutating func snapshotOrTranslateIt(_ operands: inout Operands, scratch: UnsafeMutableBufferPointer<IOTLBSegment>) {
            guard !operands.flag(), let snapshot else {
                snapshot = (mirror, reference)
                return
            }
            let iova = operands.address()
            let length = operands.size(from: iova)
            let access = operands.access()
            let capacity = Int(operands.byte()) % (scratch.count + 1)
            let what = { "snapshot translate(\(hex(iova)), \(hex(length)), \(access), capacity: \(capacity))" }
            let expected = snapshot.reference.translate(iova: iova, length: length, access: access, capacity: capacity)
            let segments = UnsafeMutableBufferPointer(rebasing: scratch[0..<capacity])
            requireTranslation(snapshot.mirror.translate(iova: iova, length: length, access: access, into: segments),
                               segments, expected, "\(what()) via the mirror")
            requireTranslation(iotlbCache.translate(snapshot.mirror.iotlb, iova: iova, length: length, access: access, into: segments),
                               segments, expected, "\(what()) via the IOTLB cache")
            requireTranslation(mirrorCache.translate(snapshot.mirror, iova: iova, length: length, access: access, into: segments),
                               segments, expected, "\(what()) via the mirror cache")
        }

        // MARK: Checks

        /// After an accepted UPDATE: one the page table cannot hold (unaligned, beyond 2^48 or
        /// the frame field) is counted as unmirrored; one it can is mirrored (both ends map as
        /// the UPDATE says) unless counted (the table pool was full).
        private func checkMirrored(iova: UInt64, size: UInt64, userAddress: UInt64, permission: IOMMUPermission,
                                   newlyUnmirrored: Int, _ what: @autoclosure () -> String) {
            let pageMask = IOPageTable.pageSize - 1
            let mirrorable = (iova | size | userAddress) & pageMask == 0
                && UInt128(iova) + UInt128(size) <= UInt128(IOPageTable.iovaLimit)
                && UInt128(userAddress) + UInt128(size) <= UInt128(IOPageTableEntry.frameLimit)
            require(newlyUnmirrored == 1 || (newlyUnmirrored == 0 && mirrorable),
                    "\(what()): unmirrored count went up by \(newlyUnmirrored) (the page table can\(mirrorable ? "" : "not") hold it)")
            guard newlyUnmirrored == 0 else { return }
            for offset in [0, size - 1] {
                let walked = mirror.pageTable.walk(iova: iova + offset)
                require(walked?.userAddress == userAddress + offset && walked?.permission == permission,
                        "\(what()): mirrored, but the page table maps +\(hex(offset)) as \(String(describing: walked))")
            }
        }

        /// The entries, the limits, both structures' invariants and the page table's agreement.
        private func checkState(_ what: @autoclosure () -> String) {
            requireSameEntries(mirror.iotlb.entries, reference, what())
            require(mirror.iotlb.entries.count <= entryLimit, "\(what()): \(mirror.iotlb.entries.count) entries, limit \(entryLimit)")
            requireSound(mirror.iotlb.entries, what())
            let violations = mirror.pageTable.invariantViolations()
            require(violations.isEmpty, "\(what()): page table broken: \(violations.prefix(3))")
            require(mirror.pageTable.tablesAllocated <= tableLimit,
                    "\(what()): \(mirror.pageTable.tablesAllocated) tables, limit \(tableLimit)")
            requireLeavesAgree(what())
        }

        /// Every page-table leaf maps each of its bytes as the reference does: one pass over the
        /// leaves (in IOVA order) and the reference entries together.
        private func requireLeavesAgree(_ what: @autoclosure () -> String) {
            var index = 0
            var problem: String?
            mirror.pageTable.forEachLeaf { iova, size, userAddress, permission in
                guard problem == nil else { return }
                let last = iova + (size - 1)
                var cursor = iova
                while true {
                    while index < reference.count, reference.entries[index].range.upperBound < cursor { index += 1 }
                    guard index < reference.count, reference.entries[index].range.lowerBound <= cursor else {
                        problem = "the leaf at \(hex(iova)) (\(hex(size)) bytes) maps \(hex(cursor)), which the reference does not"
                        return
                    }
                    let entry = reference.entries[index]
                    guard entry.value.permission == permission,
                          entry.value.userAddress + (cursor - entry.range.lowerBound) == userAddress + (cursor - iova) else {
                        problem = "the leaf at \(hex(iova)) (\(hex(size)) bytes → \(hex(userAddress)), \(permission.rawValue)) "
                            + "maps \(hex(cursor)) unlike the reference entry \(entry)"
                        return
                    }
                    guard entry.range.upperBound < last else { return }
                    cursor = entry.range.upperBound + 1
                }
            }
            if let problem { fail("\(what()): \(problem)") }
        }

        /// Buffers across both ends of a range just changed.
        private mutating func probe(around iova: UInt64, size: UInt64, scratch: UnsafeMutableBufferPointer<IOTLBSegment>) {
            let last = iova &+ (size &- 1)
            compareTranslations(iova: iova &- 1, length: 2, access: .read, capacity: 2, scratch: scratch)
            compareTranslations(iova: iova, length: min(size, 3 * IOPageTable.pageSize), access: .write, capacity: 1, scratch: scratch)
            compareTranslations(iova: last, length: 2, access: .read, capacity: 2, scratch: scratch)
        }

        /// One buffer through the mirror, the IOTLB alone, the page table alone (when it
        /// answers rather than misses) and both caches, each against the reference.
        private mutating func compareTranslations(iova: UInt64, length: UInt64, access: IOMMUAccess, capacity: Int,
                                                  scratch: UnsafeMutableBufferPointer<IOTLBSegment>) {
            let what = { "translate(\(hex(iova)), \(hex(length)), \(access), capacity: \(capacity))" }
            let expected = reference.translate(iova: iova, length: length, access: access, capacity: capacity)
            let segments = UnsafeMutableBufferPointer(rebasing: scratch[0..<capacity])
            requireTranslation(mirror.translate(iova: iova, length: length, access: access, into: segments),
                               segments, expected, "\(what()) via the mirror")
            requireTranslation(mirror.iotlb.translate(iova: iova, length: length, access: access, into: segments),
                               segments, expected, "\(what()) via the IOTLB")
            let walked = mirror.pageTable.translate(iova: iova, length: length, access: access, into: segments)
            if case .miss = walked {} else {
                requireTranslation(walked, segments, expected, "\(what()) via the page table")
            }
            requireTranslation(iotlbCache.translate(mirror.iotlb, iova: iova, length: length, access: access, into: segments),
                               segments, expected, "\(what()) via the IOTLB cache")
            requireTranslation(mirrorCache.translate(mirror, iova: iova, length: length, access: access, into: segments),
                               segments, expected, "\(what()) via the mirror cache")
        }
    }
}
