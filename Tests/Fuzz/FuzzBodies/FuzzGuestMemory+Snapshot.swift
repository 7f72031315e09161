extension FuzzGuestMemory {
    /// Copies all of guest memory into `snapshot`.
    func takeSnapshot() {
        snapshot.copyMemory(from: UnsafeRawBufferPointer(guestBytes))
    }

    /// The file offset of the first byte where guest memory and the snapshot differ, or nil.
    func firstDifferenceFromSnapshot() -> Int? {
        FuzzGuestBytes.firstDifference(UnsafeRawBufferPointer(guestBytes), UnsafeRawBufferPointer(snapshot))
    }
}
