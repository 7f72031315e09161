#if canImport(Glibc)
import Glibc
#endif

/// Runs a call that returns -1 and sets errno on failure, retrying on EINTR.
/// Never use it for `close`, which must not be retried (the fd is gone either way on Linux).
@inline(__always)
func retryingInterrupts<Result: BinaryInteger>(
    _ name: String, _ body: () -> Result
) throws(SystemError) -> Result {
    while true {
        let result = body()
        if result >= 0 { return result }
        let error = errno
        if error == EINTR { continue }
        throw SystemError(call: name, errno: error)
    }
}

/// Like `retryingInterrupts`, but reports EAGAIN / EWOULDBLOCK as `nil` instead of an error.
@inline(__always)
func retryingInterruptsOrWouldBlock<Result: BinaryInteger>(
    _ name: String, _ body: () -> Result
) throws(SystemError) -> Result? {
    while true {
        let result = body()
        if result >= 0 { return result }
        let error = errno
        if error == EINTR { continue }
        if error == EAGAIN || error == EWOULDBLOCK { return nil }
        throw SystemError(call: name, errno: error)
    }
}
