/// Memory aligned for O_DIRECT (4096 bytes, a multiple of every alignment a file asks for),
/// zero-filled, freed with its owner. Holds metadata tables and staged clusters.
final class AlignedBuffer {
    static let alignment = 4096

    let bytes: UnsafeMutableRawBufferPointer

    init(byteCount: Int) {
        bytes = .allocate(byteCount: max(byteCount, 1), alignment: Self.alignment)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { bytes.deallocate() }

    // SAFETY: `bytes` has at least one byte, so its base address exists.
    var base: UnsafeMutableRawPointer { bytes.baseAddress.unsafelyUnwrapped }
    var count: Int { bytes.count }

    func zero() { bytes.initializeMemory(as: UInt8.self, repeating: 0) }
}
