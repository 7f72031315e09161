import VhostSystem
import VhostUserProtocol
import VirtioSpec

/// Live migration's dirty logging (LOG_ALL, LOG_SHMFD): the front end maps a log
/// (SET_LOG_BASE), turns logging on with LOG_ALL in SET_FEATURES and sets each ring's LOG flag
/// with SET_VRING_ADDR; each change reaches the running rings' workers before it is answered.
extension VhostUserConnection {
    /// SET_LOG_BASE: maps the log (a new one replaces the old, which goes once no worker uses
    /// it: QEMU resizes the log when guest memory grows) and answers once every running ring
    /// logs into it. With LOG_SHMFD the answer is always sent.
    func setLogBase(_ description: LogDescription, descriptors: [OwnedFileDescriptor]) throws(BackendError) -> [UInt8] {
        guard let descriptor = descriptors.first else {
            throw .invalidValue(request: .setLogBase, reason: "no log file descriptor")
        }
        dirtyLog = try DirtyPageLog(descriptor: descriptor, description: description)
        try updateDirtyLogging()
        logger.info("dirty log mapped", metadata: [
            "bytes": "\(description.mmapSize)", "logging": "\(negotiatedFeatures.contains(.logAll) ? "on" : "off")",
        ])
        return Reply.ack(request: .setLogBase, value: 0).encoded().bytes
    }

    /// What ring `index` logs now: nothing unless LOG_ALL is negotiated and a log is mapped.
    func dirtyLogging(ring index: Int) -> DirtyLogging {
        guard negotiatedFeatures.contains(.logAll), let dirtyLog else { return .off }
        return DirtyLogging(log: dirtyLog, usedRingAddress: vrings[index].usedRingLogAddress)
    }

    /// Tells the workers of the running rings (or of `ring` alone) what they log now, and
    /// waits until each does: the front end may read the log as soon as it has the answer.
    func updateDirtyLogging(ring: Int? = nil) throws(BackendError) {
        for index in vrings.indices where vrings[index].started && (ring == nil || ring == index) {
            guard let worker = workers[index] else { continue }
            let completion = CommandCompletion()
            worker.mailbox.post(.setDirtyLogging(dirtyLogging(ring: index), completion))
            guard completion.wait(milliseconds: Self.workerTimeoutMilliseconds) != nil else {
                throw .workerUnresponsive(queue: index)
            }
        }
    }
}
