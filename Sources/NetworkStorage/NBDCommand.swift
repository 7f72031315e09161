#if canImport(Glibc)
import Glibc
#endif
import CNBD

/// One request of a queue, in its tag's slot from start to completion: what to send (kept to
/// send again after a reconnection) and how its NBD commands are doing. A request becomes
/// several commands when its data is in several pieces or longer than one command carries.
///
/// The fields below `tag` change only under the connection's lock (when the request is issued,
/// and in completion callbacks, which run under it), and are read by the queue once the tag
/// came out of its inbox.
struct NBDCommand {
    enum Kind { case read, write, flush, trim, zero }

    var kind = Kind.flush
    var vectors: UnsafePointer<iovec>?
    var vectorCount = 0
    var offset: UInt64 = 0
    var length: UInt64 = 0
    var unmap = false
    var tag: UInt64 = 0
    /// Commands not yet answered, plus one while the request is being issued.
    var pending = 0
    /// The first error an answer (or libnbd, when issuing) gave; 0 if none.
    var error: Int32 = 0
    /// The queue's connection it was issued on, and that connection's generation then.
    var connection = 0
    var generation: UInt64 = 0
    /// Fail without a retry (the queue gave up reconnecting).
    var final = false
    /// The issuing queue's inbox (unretained; the queue outlives its requests) and whether a push
    /// must wake it.
    var inbox: UnsafeMutableRawPointer?
    var signals = false

    /// The most bytes one NBD command carries: qemu-nbd's limit (libnbd refuses more than 64 MiB).
    static let maximumCommandBytes: UInt64 = 32 << 20

    /// Sends the request's commands on `handle` (the connection's lock held). Every command
    /// sent completes through `commandCompleted`; one libnbd refuses ends the sending, and
    /// its error is the request's.
    static func issue(_ command: UnsafeMutablePointer<NBDCommand>, on handle: NBDHandle, generation: UInt64) {
        command.pointee.pending = 1
        command.pointee.error = 0
        command.pointee.generation = generation
        let callback = nbd_completion_callback(callback: commandCompleted, user_data: UnsafeMutableRawPointer(command), free: nil)
        var failed = false
        func send(_ issued: Int64) {
            if issued == -1 {
                failed = true
                if command.pointee.error == 0 { command.pointee.error = nbdErrno() }
            } else {
                command.pointee.pending += 1
            }
        }
        switch command.pointee.kind {
        case .read, .write:
            var position = command.pointee.offset
            for index in 0..<command.pointee.vectorCount where !failed {
                guard let vector = command.pointee.vectors?[index], let base = vector.iov_base else { continue }
                var done = 0
                while done < vector.iov_len, !failed {
                    let piece = min(vector.iov_len - done, Int(maximumCommandBytes))
                    if command.pointee.kind == .read {
                        send(nbd_aio_pread(handle.raw, base + done, piece, position, callback, 0))
                    } else {
                        send(nbd_aio_pwrite(handle.raw, base + done, piece, position, callback, 0))
                    }
                    done += piece
                    position += UInt64(piece)
                }
            }
        case .flush:
            send(nbd_aio_flush(handle.raw, callback, 0))
        case .trim, .zero:
            var done: UInt64 = 0
            while done < command.pointee.length, !failed {
                let piece = min(command.pointee.length - done, maximumCommandBytes)
                if command.pointee.kind == .trim {
                    send(nbd_aio_trim(handle.raw, piece, command.pointee.offset + done, callback, 0))
                } else {
                    let flags: UInt32 = command.pointee.unmap ? 0 : UInt32(LIBNBD_CMD_FLAG_NO_HOLE)
                    send(nbd_aio_zero(handle.raw, piece, command.pointee.offset + done, callback, flags))
                }
                done += piece
            }
        }
        release(command)
    }

    /// One answer less to wait for; the last hands the tag to the queue.
    static func release(_ command: UnsafeMutablePointer<NBDCommand>) {
        command.pointee.pending -= 1
        guard command.pointee.pending == 0, let inbox = command.pointee.inbox else { return }
        Unmanaged<CompletionInbox>.fromOpaque(inbox).takeUnretainedValue()
            .push(command.pointee.tag, signal: command.pointee.signals)
    }

    private static func nbdErrno() -> Int32 {
        let code = nbd_get_errno()
        return code > 0 ? code : EIO
    }
}

/// libnbd's completion callback: the command's error (0 on success), then one answer less.
/// Returning 1 retires the command in libnbd.
private let commandCompleted: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?) -> Int32 = { userData, error in
    guard let command = userData?.assumingMemoryBound(to: NBDCommand.self) else { return 1 }
    if let code = error?.pointee, code != 0, command.pointee.error == 0 { command.pointee.error = code }
    NBDCommand.release(command)
    return 1
}
