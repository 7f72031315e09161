import IOMMUModel

extension IOMMUModelFuzz {
    /// A `ReverseTranslator` over up to four regions of any size, place and file offset (empty,
    /// wrapping and overlapping ones included), then translations of any buffer.
    ///
    /// Checked against a list of the regions: the table refused exactly when and as the first
    /// bad region says; locations, translations (with 0...4 segments) and `segments` equal to a
    /// walk over the list in 128-bit arithmetic that joins pieces continuing the same file.
    static func checkReverseTranslation(_ operands: inout Operands) {
        var regions: [BackedMemoryRegion] = []
        for _ in 0..<(operands.byte() % 5) {
            let userAddress = operands.address()
            let size = operands.size(from: userAddress)
            let backing = BackingID(rawValue: UInt64(operands.byte() % 3))
            let fileOffset = operands.address()
            regions.append(BackedMemoryRegion(userAddress: userAddress, size: size, backing: backing, fileOffset: fileOffset))
        }
        let expected = regionsError(regions)
        let translator: ReverseTranslator
        do throws(ReverseTranslationError) {
            translator = try ReverseTranslator(regions: regions)
            require(expected == nil, "a translator over \(regions) made, the reference refuses: \(String(describing: expected))")
        } catch {
            require(error == expected, "ReverseTranslator(\(regions)) threw \(error), the reference \(String(describing: expected))")
            return
        }
        var probes: [(UInt64, UInt64)] = regions.map { ($0.userAddress &- 1, 2) }
        for _ in 0..<2 {
            let userAddress = operands.address()
            probes.append((userAddress, operands.size(from: userAddress)))
        }
        var storage = [BackingSegment](repeating: BackingSegment(backing: BackingID(rawValue: 0), fileOffset: 0, length: 0), count: 4)
        for (userAddress, length) in probes {
            let what = { "translate(\(hex(userAddress)), \(hex(length))) over \(regions)" }
            let location = translator.location(of: userAddress)
            let expectedLocation = regions.first { holds($0, userAddress) }.map {
                BackingLocation(backing: $0.backing, fileOffset: $0.fileOffset + (userAddress - $0.userAddress))
            }
            require(location == expectedLocation, "\(what()): location \(String(describing: location)), the reference \(String(describing: expectedLocation))")
            let capacity = Int(operands.byte() % 5)
            let reference = reverseTranslate(regions, userAddress: userAddress, length: length, capacity: capacity)
            let answer = storage.withUnsafeMutableBufferPointer { buffer in
                translator.translate(userAddress: userAddress, length: length, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<capacity]))
            }
            var same = answer == reference.0
            if same, case .translated(let count) = answer { same = Array(storage.prefix(count)) == reference.1 }
            require(same, "\(what()), capacity \(capacity): answered \(answer), the reference \(reference)")
            let all = reverseTranslate(regions, userAddress: userAddress, length: length, capacity: .max)
            let segments = translator.segments(userAddress: userAddress, length: length)
            let expectedSegments: [BackingSegment]? = if case .translated = all.0 { all.1 } else { nil }
            require(segments == expectedSegments, "\(what()): segments \(String(describing: segments)), the reference \(all)")
        }
    }

    /// The error the translator must throw for `regions`: the first region that is empty, wraps
    /// (user or file range) or overlaps an earlier one (named with the first it overlaps).
    private static func regionsError(_ regions: [BackedMemoryRegion]) -> ReverseTranslationError? {
        for (index, region) in regions.enumerated() {
            if region.size == 0 { return .emptyRegion(index: index) }
            if UInt128(region.userAddress) + UInt128(region.size) - 1 > UInt128(UInt64.max) { return .regionWraps(index: index) }
            if UInt128(region.fileOffset) + UInt128(region.size) - 1 > UInt128(UInt64.max) { return .fileOffsetWraps(index: index) }
            if let earlier = regions[..<index].firstIndex(where: { regionsOverlap($0, region) }) { return .overlappingRegions(earlier, index) }
        }
        return nil
    }

    /// The answer a reverse translation must give: walk the buffer region by region (wrapping
    /// at 2^64), joining pieces that continue the same file.
    private static func reverseTranslate(_ regions: [BackedMemoryRegion], userAddress: UInt64, length: UInt64,
                                         capacity: Int) -> (ReverseTranslation, [BackingSegment]) {
        var segments: [BackingSegment] = []
        var position = UInt128(userAddress)
        let end = UInt128(userAddress) + UInt128(length)
        while position < end {
            let address = UInt64(truncatingIfNeeded: position)
            guard let region = regions.first(where: { holds($0, address) }) else { return (.unbacked(userAddress: address), []) }
            let offset = address - region.userAddress
            let pieceEnd = min(end, position + UInt128(region.size - offset))
            let fileOffset = region.fileOffset + offset
            let pieceLength = UInt64(pieceEnd - position)
            if let last = segments.last, last.backing == region.backing,
               UInt128(last.fileOffset) + UInt128(last.length) == UInt128(fileOffset) {
                segments[segments.count - 1].length += pieceLength
            } else {
                guard segments.count < capacity else { return (.needsMoreSegments, []) }
                segments.append(BackingSegment(backing: region.backing, fileOffset: fileOffset, length: pieceLength))
            }
            position = pieceEnd
        }
        return (.translated(segmentCount: segments.count), segments)
    }

    /// Whether the (non-empty, non-wrapping) region holds `address`.
    private static func holds(_ region: BackedMemoryRegion, _ address: UInt64) -> Bool {
        address >= region.userAddress && address - region.userAddress < region.size
    }

    /// Whether two regions share an address.
    private static func regionsOverlap(_ first: BackedMemoryRegion, _ second: BackedMemoryRegion) -> Bool {
        holds(first, second.userAddress) || holds(second, first.userAddress)
    }
}
