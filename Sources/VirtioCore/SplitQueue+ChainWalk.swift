import VirtioSpec

extension SplitQueue {
    /// Walks the chain starting at descriptor `head` into the segment buffer.
    ///
    /// Each descriptor is copied out of shared memory first and only the copy is checked and
    /// used. The rules, in the order they are applied to each descriptor:
    /// 1. its index is inside the table it is read from (the queue's table: < queue size; an
    ///    indirect table: < its entry count);
    /// 2. INDIRECT descriptors: not inside an indirect table, feature negotiated, NEXT not set,
    ///    length a non-zero multiple of 16 of at most 16·queue size bytes, no address overflow,
    ///    the table inside one region; WRITE on it is ignored; the walk continues at entry 0 of
    ///    the table, and the INDIRECT descriptor itself does not count as a buffer;
    /// 3. buffer descriptors: at most queue-size of them in the whole chain (TTL, which is
    ///    also what stops loops); no readable one after a writable one; a zero-length one is
    ///    skipped (its address is never looked at) but still counts and still obeys the order;
    ///    otherwise no address overflow, every byte inside guest memory (possibly across
    ///    adjacent regions), total bytes at most 2^32, and room in the segment buffer.
    func walkChain<Translator: DescriptorAddressTranslator>(
        head: UInt16, translator: Translator
    ) throws(VirtqueueError) -> DescriptorChain {
        // Invalidate chains handed out before: their segments are about to be overwritten.
        storage.generation &+= 1
        let queueSize = layout.queueSize
        var table = UnsafeRawPointer(layout.descriptorTable)
        var tableEntries = queueSize
        var inIndirectTable = false
        var index = head
        var bufferDescriptors = 0
        var segmentCount = 0
        var readableSegmentCount = 0
        var readableBytes: UInt64 = 0
        var writableBytes: UInt64 = 0
        var seenWritable = false

        while true {
            guard Int(index) < tableEntries else {
                if inIndirectTable { throw .indirectIndexOutOfRange(index: index, tableSize: tableEntries) }
                throw .descriptorIndexOutOfRange(index: index, queueSize: queueSize)
            }
            // SAFETY: index < tableEntries, and the table spans 16·tableEntries mapped bytes (the
            // Layout checked the queue's table; the indirect branch below checks each table).
            let descriptor = SplitDescriptor(copyingFrom: table + Int(index) * SplitDescriptor.byteCount)

            if descriptor.flags.contains(.indirect) {
                guard !inIndirectTable else { throw .nestedIndirect }
                guard features.contains(.indirectDescriptors) else { throw .indirectNotNegotiated }
                guard !descriptor.flags.contains(.next) else { throw .indirectWithNext }
                let length = descriptor.length
                let entries = Int(length) / SplitDescriptor.byteCount
                guard length > 0, Int(length) % SplitDescriptor.byteCount == 0, entries <= maximumChainLength else {
                    throw .indirectTableLengthInvalid(length: length)
                }
                table = UnsafeRawPointer(try indirectTable(descriptor, translator: translator))
                tableEntries = entries
                inIndirectTable = true
                index = 0
                continue
            }

            guard bufferDescriptors < maximumChainLength else { throw .chainTooLong(limit: maximumChainLength) }
            bufferDescriptors += 1
            let writable = descriptor.flags.contains(.write)
            if writable {
                seenWritable = true
            } else if seenWritable {
                throw .readableAfterWritable
            }

            if descriptor.length > 0 {
                let translation = translator.segments(Translator.Address(rawValue: descriptor.address),
                                                      length: Int(descriptor.length), deviceWrites: writable,
                                                      into: storage.free(after: segmentCount))
                switch translation {
                case .translated(let count):
                    // A translator never reports more than the room it was given; if one did,
                    // refuse rather than index past the buffer.
                    guard count >= 0, count <= storage.capacity - segmentCount else {
                        throw .tooManySegments(limit: storage.capacity)
                    }
                    segmentCount += count
                case .notMapped:
                    throw .addressNotInGuestMemory(address: descriptor.address, length: descriptor.length)
                case .addressOverflow:
                    throw .addressOverflow(address: descriptor.address, length: descriptor.length)
                case .needsMoreSegments:
                    throw .tooManySegments(limit: storage.capacity)
                case .deferred:
                    throw .translationDeferred(address: descriptor.address)
                }
                // At most 32768 descriptors of < 2^32 bytes: these sums stay below 2^47.
                if writable {
                    writableBytes += UInt64(descriptor.length)
                } else {
                    readableBytes += UInt64(descriptor.length)
                    readableSegmentCount = segmentCount
                }
                guard readableBytes + writableBytes <= SplitRing.maximumChainByteCount else {
                    throw .chainByteCountTooLarge(limit: SplitRing.maximumChainByteCount)
                }
            }

            guard descriptor.flags.contains(.next) else { break }
            index = descriptor.next
        }

        // Both totals are <= 2^32, so the conversions cannot trap on a 64-bit host.
        return DescriptorChain(headIndex: head, readableByteCount: Int(readableBytes), writableByteCount: Int(writableBytes),
                               memory: translator.memory, storage: storage, readableSegmentCount: readableSegmentCount,
                               writableSegmentCount: segmentCount - readableSegmentCount)
    }

    /// Host address of the indirect table an INDIRECT descriptor (already length-checked)
    /// points to. Tables are read in place, so they must be contiguous in one region.
    private func indirectTable<Translator: DescriptorAddressTranslator>(
        _ descriptor: SplitDescriptor, translator: Translator
    ) throws(VirtqueueError) -> UnsafeMutableRawPointer {
        let address = Translator.Address(rawValue: descriptor.address)
        let length = Int(descriptor.length)
        guard !descriptor.address.addingReportingOverflow(UInt64(descriptor.length)).overflow else {
            throw .addressOverflow(address: descriptor.address, length: descriptor.length)
        }
        if let pointer = translator.pointer(address, length: length) { return pointer }
        // Not in one region: find out whether it is mapped at all, to report the right error.
        // Only the error path gets here. Room for a piece per region: with less, a table through
        // three adjacent regions into a gap would stop at "needs more segments" before the gap.
        let pieces = max(translator.memory.regions.count, 2)
        let answer = withUnsafeTemporaryAllocation(of: BufferSegment.self, capacity: pieces) { scratch in
            translator.tableSegments(address, length: length, into: scratch)
        }
        let spansRegions: Bool
        switch answer {
        case .translated, .needsMoreSegments: spansRegions = true
        case .notMapped, .addressOverflow: spansRegions = false
        case .deferred: throw .translationDeferred(address: descriptor.address)
        }
        if spansRegions { throw .indirectTableSpansRegions(address: descriptor.address, length: descriptor.length) }
        throw .addressNotInGuestMemory(address: descriptor.address, length: descriptor.length)
    }
}
