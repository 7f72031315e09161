extension BlockRequestFuzz {
    /// The status byte, the used length and every byte of guest memory after a request: memory
    /// must be the snapshot taken before it, plus exactly what `expected` says the device writes.
    static func check(usedLength: UInt32, of request: Request, placed: PlacedChain, against expected: Expectation) {
        let guest = rig.guest
        if let status = expected.status {
            guard let statusByte = placed.writableFileRanges(from: request.writableCount - 1, count: 1, in: guest).first?.lowerBound
            else {
                fatalError("the status byte of \(request) is not in guest memory")
            }
            let written = guest.guestBytes[statusByte]
            guard written <= Expectation.statusUnsupported else {
                fatalError("status byte \(written) is none of OK, IOERR, UNSUPP for \(request)")
            }
            guard written == status else {
                fatalError("status \(written), expected \(status) for \(request)")
            }
            guest.snapshot[statusByte] = status
        }
        guard Int(usedLength) <= request.writableCount else {
            fatalError("used length \(usedLength) is more than the \(request.writableCount) writable bytes of \(request)")
        }
        guard usedLength == expected.usedLength else {
            fatalError("used length \(usedLength), expected \(expected.usedLength) for \(request)")
        }
        switch expected.reply {
        case .nothing:
            break
        case .disk(let offset, let count):
            copy(UnsafeRawBufferPointer(rebasing: rig.shadow[offset..<(offset + count)]),
                 into: placed.writableFileRanges(from: 0, count: count, in: guest))
        case .identifier:
            rig.identifier.withUnsafeBytes { identifier in
                copy(identifier, into: placed.writableFileRanges(from: 0, count: identifier.count, in: guest))
            }
        }
        if let offset = guest.firstDifferenceFromSnapshot() {
            fatalError("guest memory at file offset \(offset) is \(guest.guestBytes[offset]), expected \(guest.snapshot[offset]) after \(request) (reply \(expected.reply))")
        }
    }

    /// Applies what the request did to the shadow disk if it succeeded, then compares the image
    /// with the shadow byte for byte.
    static func checkImage(after request: Request, against expected: Expectation, readOnly: Bool) {
        if expected.status == Expectation.statusOK {
            switch expected.effect {
            case .none:
                break
            case .write(let offset, let source):
                request.readable.withUnsafeBytes { stream in
                    UnsafeMutableRawBufferPointer(rebasing: rig.shadow[offset..<(offset + source.count)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: stream[source]))
                }
            case .zero(let ranges):
                for range in ranges {
                    UnsafeMutableRawBufferPointer(rebasing: rig.shadow[range]).initializeMemory(as: UInt8.self, repeating: 0)
                }
            }
        }
        if let offset = FuzzGuestBytes.firstDifference(UnsafeRawBufferPointer(rig.image), UnsafeRawBufferPointer(rig.shadow)) {
            fatalError("\(readOnly ? "read-only " : "")image byte \(offset) is \(rig.image[offset]), the shadow says \(rig.shadow[offset]) after \(request) (expected status \(String(describing: expected.status)), effect \(expected.effect))")
        }
    }

    /// Copies `source` into the snapshot's `ranges`, in order.
    private static func copy(_ source: UnsafeRawBufferPointer, into ranges: [Range<Int>]) {
        var copied = 0
        for range in ranges {
            UnsafeMutableRawBufferPointer(rebasing: rig.guest.snapshot[range])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[copied..<(copied + range.count)]))
            copied += range.count
        }
    }
}
