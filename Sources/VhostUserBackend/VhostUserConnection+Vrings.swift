import VhostSystem
import VhostUserProtocol
import VirtioCore
import VirtioSpec

extension VhostUserConnection {
    func setVringNumber(_ state: VringState) throws(BackendError) {
        let index = Int(state.index)
        let size = Int(state.num)
        guard SplitRing.isValidQueueSize(size) else {
            throw .invalidState(request: .setVringNum, reason: "queue size \(size) is not a power of two")
        }
        // A ring larger than the device accepts is recorded all the same: SET_VRING_NUM has no
        // reply to refuse it with, so the ring starts and fails its requests (`startRing`).
        guard !vrings[index].started else {
            throw .invalidState(request: .setVringNum, reason: "ring \(index) is running")
        }
        vrings[index].size = size
    }

    /// SET_VRING_ADDR. A running ring accepts it only with its addresses unchanged: QEMU sends
    /// it again to set or clear the LOG flag when a migration starts or ends.
    func setVringAddress(_ address: VringAddress) throws(BackendError) {
        let index = Int(address.index)
        let descriptorTable = FrontEndVirtualAddress(rawValue: address.descriptorTable)
        let availableRing = FrontEndVirtualAddress(rawValue: address.availableRing)
        let usedRing = FrontEndVirtualAddress(rawValue: address.usedRing)
        let logAddress = address.flags.contains(.log) ? address.logGuestAddress : nil
        if vrings[index].started {
            guard vrings[index].descriptorTable == descriptorTable, vrings[index].availableRing == availableRing,
                  vrings[index].usedRing == usedRing else {
                throw .invalidState(request: .setVringAddr, reason: "ring \(index) is running and would move")
            }
            vrings[index].usedRingLogAddress = logAddress
            try updateDirtyLogging(ring: index)
            return
        }
        vrings[index].descriptorTable = descriptorTable
        vrings[index].availableRing = availableRing
        vrings[index].usedRing = usedRing
        vrings[index].usedRingLogAddress = logAddress
    }

    func setVringBase(_ state: VringState) throws(BackendError) {
        let index = Int(state.index)
        guard !vrings[index].started else {
            throw .invalidState(request: .setVringBase, reason: "ring \(index) is running")
        }
        guard let base = UInt16(exactly: state.num) else {
            throw .invalidState(request: .setVringBase, reason: "base \(state.num) does not fit a split ring's 16-bit index")
        }
        vrings[index].nextAvailableIndex = base
    }

    /// GET_VRING_BASE stops the ring and answers the next available index to process.
    func getVringBase(_ state: VringState) throws(BackendError) -> [UInt8] {
        let index = Int(state.index)
        let base = vrings[index].started ? try stopRing(index) : vrings[index].nextAvailableIndex
        return Reply.vringBase(VringState(index: state.index, num: UInt32(base))).encoded().bytes
    }

    /// SET_VRING_KICK gives the ring its kick eventfd and starts it.
    func setVringKick(_ file: VringFileIndex, descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        let index = Int(file.index)
        guard file.hasFileDescriptor, let descriptor = descriptors.first else {
            throw .invalidValue(request: .setVringKick, reason: "polling rings without a kick eventfd is not supported")
        }
        let kick = try notifier(descriptor, for: .setVringKick)
        if vrings[index].started { _ = try stopRing(index) }
        vrings[index].kick = kick
        try startRing(index)
    }

    func setVringCall(_ file: VringFileIndex, descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        let index = Int(file.index)
        let eventfd = file.hasFileDescriptor ? try descriptors.first.map { (descriptor) throws(BackendError) in
            try notifier(descriptor, for: .setVringCall)
        } : nil
        vrings[index].call = eventfd
        workers[index]?.mailbox.post(.setCall(eventfd))
    }

    func setVringError(_ file: VringFileIndex, descriptors: [OwnedFileDescriptor]) throws(BackendError) {
        let index = Int(file.index)
        let eventfd = file.hasFileDescriptor ? try descriptors.first.map { (descriptor) throws(BackendError) in
            try notifier(descriptor, for: .setVringErr)
        } : nil
        vrings[index].error = eventfd
        workers[index]?.mailbox.post(.setError(eventfd))
    }

    /// A kick, call or error eventfd from the front end, made non-blocking. Workers read and
    /// write these on their own thread; a blocking one (a call eventfd whose counter is full, a
    /// pipe nobody drains) would block the worker forever, and with it GET_VRING_BASE and the
    /// close of the connection, which joins the worker. Non-blocking, a full counter is EAGAIN,
    /// which `EventFD.signal` already treats as delivered. O_NONBLOCK is on the open file the
    /// front end shares; QEMU creates its notifiers non-blocking anyway.
    private func notifier(_ descriptor: OwnedFileDescriptor, for request: VhostUserRequest) throws(BackendError) -> EventFD {
        do {
            try descriptor.setNonBlocking(true)
        } catch {
            throw .invalidValue(request: request, reason: "cannot make the notifier non-blocking: \(error)")
        }
        return EventFD(adopting: descriptor)
    }

    func setVringEnable(_ state: VringState) throws(BackendError) {
        let index = Int(state.index)
        guard state.num <= 1 else {
            throw .invalidValue(request: .setVringEnable, reason: "enable value \(state.num) is neither 0 nor 1")
        }
        vrings[index].enabled = state.num == 1
        workers[index]?.mailbox.post(.setEnabled(state.num == 1))
    }

    private func startRing(_ index: Int) throws(BackendError) {
        let setup = vrings[index]
        guard let size = setup.size, let descriptorTable = setup.descriptorTable,
              let availableRing = setup.availableRing, let usedRing = setup.usedRing, let kick = setup.kick
        else {
            throw .invalidState(request: .setVringKick, reason: "ring \(index) is started before its size and addresses are set")
        }
        let worker: QueueWorker
        if let existing = workers[index] {
            worker = existing
        } else {
            worker = try QueueWorker(queueIndex: index, device: device, memory: memory, polling: polling, logger: logger)
            try worker.launch()
            workers[index] = worker
        }
        worker.mailbox.post(.start(RingStartConfiguration(
            size: size, descriptorTable: descriptorTable, availableRing: availableRing, usedRing: usedRing,
            nextAvailableIndex: setup.nextAvailableIndex, features: negotiatedFeatures, kick: kick,
            call: setup.call, error: setup.error, enabled: setup.enabled, memory: memory,
            iotlb: usesIOVAs ? iotlb : nil, backendChannel: usesIOVAs ? backendChannel : nil, inflight: inflightArea,
            dirtyLogging: dirtyLogging(ring: index),
            refusal: size > device.maximumQueueSize
                ? "a ring of \(size) entries is larger than the device accepts (\(device.maximumQueueSize), --queue-size)" : nil)))
        vrings[index].started = true
    }

    /// Stops a running ring and waits for its worker to finish the requests it took. The
    /// ring's position is kept as its next base, so a restart (a re-sent SET_VRING_KICK)
    /// continues where the ring stopped instead of serving requests again.
    /// - Returns: the next available index to process.
    func stopRing(_ index: Int) throws(BackendError) -> UInt16 {
        vrings[index].started = false
        vrings[index].kick = nil
        guard let worker = workers[index] else { return vrings[index].nextAvailableIndex }
        let completion = CommandCompletion()
        worker.mailbox.post(.stop(completion))
        guard let base = completion.wait(milliseconds: Self.workerTimeoutMilliseconds) else {
            throw .workerUnresponsive(queue: index)
        }
        vrings[index].nextAvailableIndex = UInt16(truncatingIfNeeded: base)
        return vrings[index].nextAvailableIndex
    }
}
