/// The value a ``TwoStepMapper`` stores for a reservation: its id. Reservations are released
/// whole, never sliced, so slicing keeps the id.
struct ReservationTag: RangeValue, Sendable {
    var id: UInt64

    func sliced(from offset: UInt64) -> ReservationTag { self }
}
