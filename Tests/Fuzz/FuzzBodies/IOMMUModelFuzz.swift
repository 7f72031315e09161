import IOMMUModel

/// Fuzz body: the IOMMU model driven by a sequence of operations with hostile operands, every
/// operation checked against a plain reference model (sorted arrays and lists, changed the
/// obvious way).
///
/// Input: a configuration (the IOTLB's entry limit and page-table pool, the pin limit, the
/// `TwoStepMapper`'s geometry and window, the mmap cookie table's page size and window), then up
/// to 256 operations, each an opcode byte and its operands (`Operands`: any 64-bit address,
/// size or permission, but mostly near a few anchors so that ranges overlap, touch and wrap).
///
/// The operations: UPDATE, INVALIDATE and translations on the daemon's `IOPageTableMirror` and
/// its two last-hit caches (`MirrorHarness`); reserve, link, unlink, replace and release on a
/// `TwoStepMapper`, its messages replayed into an `IOTLB` (`MapperHarness`); pin, release (also
/// to the wrong tracker) and invalidate on a `PinTracker`, every INVALIDATE of the mirror too
/// (`PinHarness`); export, fixed areas, lookup, revoke and end of quarantine on an
/// `MmapCookieTable` (`CookieHarness`); a `ReverseTranslator` built and translated
/// (`checkReverseTranslation`).
///
/// Checked, beyond "never traps": after every operation the model gives the reference's answer
/// (the same error in the documented order, or the same result and messages), holds the same
/// state, keeps its limits (IOTLB entries, page tables, pinned bytes) and passes its invariant
/// checks (range stores, page table, page-table leaves agreeing with the IOTLB, canonical pin
/// runs); translations by every path agree with the reference. A disagreement is a
/// `fatalError` saying what differed.
public enum IOMMUModelFuzz {
    /// Operations run per input, so that every input stays fast.
    static let maximumOperations = 256
    /// Segments a translation may use at most (each chooses 0...8).
    static let scratchSegments = 8

    public static func run(_ data: UnsafeRawBufferPointer) {
        var operands = Operands(data)
        var mirror = MirrorHarness(&operands)
        var pins = PinHarness(&operands)
        var mapper = MapperHarness(&operands)
        var cookies = CookieHarness(&operands)
        let scratch = UnsafeMutableBufferPointer<IOTLBSegment>.allocate(capacity: scratchSegments)
        scratch.initialize(repeating: IOTLBSegment(userAddress: 0, length: 0))
        defer { scratch.deallocate() }
        var operations = 0
        while !operands.isAtEnd, operations < maximumOperations {
            operations += 1
            switch operands.byte() % 23 {
            case 0, 1: mirror.update(&operands, scratch: scratch)
            case 2: pins.invalidate(mirror.invalidate(&operands, scratch: scratch))
            case 3: mirror.translate(&operands, scratch: scratch)
            case 4: mirror.snapshotOrTranslateIt(&operands, scratch: scratch)
            case 5: mapper?.reserve(&operands)
            case 6: mapper?.link(&operands)
            case 7: mapper?.linkPages(&operands)
            case 8: mapper?.unlink(&operands)
            case 9: mapper?.replace(&operands)
            case 10: mapper?.release(&operands)
            case 11: pins.pin(&operands)
            case 12: pins.release(&operands)
            case 13: pins.releaseToTheWrongTracker(&operands)
            case 14: pins.invalidate(operands.range())
            case 15: cookies?.export(&operands)
            case 16: cookies?.exportAtFixedOffset(&operands)
            case 17: cookies?.reserveFixedArea(&operands)
            case 18: cookies?.lookup(&operands)
            case 19: cookies?.revoke(&operands)
            case 20: cookies?.revokeAll(&operands)
            case 21: cookies?.endQuarantine(&operands)
            default: checkReverseTranslation(&operands)
            }
        }
        pins.releaseAll()
    }
}
