/// How long a request's payload must be.
enum PayloadLengthRule: Equatable {
    /// Exactly this many bytes (0 for requests without a payload).
    case fixed(Int)
    /// SET_MEM_TABLE: 8 + 32·nregions, nregions read from the first u32.
    case memoryTable
    /// GET/SET_CONFIG: 12 + size, size read from the second u32.
    case configAccess
    /// Any length up to the header limit (CREATE_CRYPTO_SESSION, kept opaque).
    case opaque
}
