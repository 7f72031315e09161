/// What a run of the mmap offset space holds. Exports are never cut, so slicing keeps the
/// value; fixed areas are cut when an export takes part of one, and a free area stays free.
enum CookieSlot: RangeValue, Equatable, Sendable {
    /// A pre-reserved fixed area, free for a fixed export.
    case fixedArea
    /// A live export.
    case export(ExportRecord)
    /// A revoked export whose mappings may still exist: its offsets are not reused.
    case quarantined(ExportRecord)

    func sliced(from offset: UInt64) -> CookieSlot { self }
}
