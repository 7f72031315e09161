import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

extension BackEndIntegration {
    @Suite("Ring life cycle")
    struct RingLifecycleTests {
        @Test("requests kicked before SET_VRING_ENABLE(1) are served once the ring is enabled",
              arguments: [true, false])
        func kicksBeforeEnableAreNotLost(eventIndex: Bool) throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let session = try backEnd.connect()
            var features = try QEMUSequence.connect(session).features
            if !eventIndex { features.remove(.eventIndex) }
            let guest = try BlockGuest(eventIndex: eventIndex)
            try QEMUSequence.start(session, guest: guest, features: features, enable: false)

            let data = pattern(count: 1024, seed: 7)
            let pending = try (0..<3).map { index in
                try guest.submit(queue: 0, type: BlockGuest.RequestType.write.rawValue, sector: UInt64(index * 2), outData: data)
            }
            // The worker takes each kick, finds the ring disabled and sleeps again.
            #expect(WorkerThreads.waitUntilKickTaken(guest.kicks[0].rawValue, queue: 0))
            #expect(guest.queues[0].usedIndex == 0, "a disabled ring must not be processed")

            try session.enableRing(index: 0, true)
            let completions = try guest.complete(pending)
            #expect(completions.map(\.status) == [0, 0, 0])
            #expect(try backEnd.imageBytes(offset: 4 * 512, count: data.count) == data)
        }

        @Test("a disabled ring stops taking requests and resumes where it was when enabled again")
        func disableAndEnableAgain() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            #expect(try started.guest.write(sector: 1, pattern(count: 512, seed: 1)) == BlockGuest.statusOK)
            try started.session.enableRing(index: 0, false)
            try started.session.send(.getFeatures)  // a reply: the disable has been handled
            let pending = try started.guest.submit(queue: 0, type: BlockGuest.RequestType.flush.rawValue, sector: 0)
            #expect(WorkerThreads.waitUntilKickTaken(started.guest.kicks[0].rawValue, queue: 0))
            #expect(started.guest.queues[0].usedIndex == 1)
            try started.session.enableRing(index: 0, true)
            #expect(try started.guest.complete([pending])[0].status == BlockGuest.statusOK)
            #expect(try started.session.stopRing(index: 0) == 2)
        }

        @Test("SET_VRING_KICK sent again to a running ring keeps the ring's position")
        func resentKickKeepsPosition() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            let guest = started.guest
            for sector in 0..<3 {
                #expect(try guest.write(sector: UInt64(sector), pattern(count: 512, seed: UInt64(sector))) == BlockGuest.statusOK)
            }
            // A new kick eventfd for the running ring (QEMU replaces notifiers this way).
            let newKick = try EventFD()
            try started.session.send(.setVringKick(VringFileIndex(index: 0, hasFileDescriptor: true)),
                                     descriptors: [newKick.rawValue])
            try started.session.send(.getFeatures)  // a reply: the kick has been handled
            let pending = try guest.submit(queue: 0, type: BlockGuest.RequestType.flush.rawValue, sector: 0, kick: false)
            try newKick.signal()
            #expect(try guest.complete([pending])[0].status == BlockGuest.statusOK)
            // The batch is over once the worker sleeps again: the three writes were not served a second time.
            #expect(WorkerThreads.waitUntilSleepingInEpoll(queue: 0))
            #expect(guest.queues[0].usedIndex == 4)
            #expect(try started.session.stopRing(index: 0) == 4)
        }

        @Test("RESET_DEVICE stops the rings, and the device can be set up again on the same connection")
        func resetDeviceThenSetUpAgain() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            let (session, guest) = (started.session, started.guest)
            #expect(try guest.write(queue: 1, sector: 10, pattern(count: 512, seed: 10)) == BlockGuest.statusOK)
            try session.writeConfig(offset: 32, bytes: [0])  // writethrough

            try session.resetDevice()
            try session.send(.getFeatures)  // a reply: RESET_DEVICE has been handled
            // A request made available and kicked after the reset is not processed: the worker,
            // woken by a command, takes a whole turn and leaves the kick alone (it no longer
            // watches that eventfd).
            try guest.submit(queue: 1, type: BlockGuest.RequestType.flush.rawValue, sector: 0)
            #expect(try WorkerThreads.turn(queue: 1, session: session, call: guest.calls[1]))
            #expect(waitReadable(guest.kicks[1].rawValue, milliseconds: 0), "the kick must stay untaken")
            #expect(guest.queues[1].usedIndex == 1)
            // The device is back to power-on: writeback again.
            #expect(try session.readConfig(offset: 32, size: 1) == [1])

            try guest.replaceRings()
            try QEMUSequence.start(session, guest: guest, features: started.features)
            let data = pattern(count: 2048, seed: 11)
            #expect(try guest.write(queue: 1, sector: 20, data) == BlockGuest.statusOK)
            #expect(try guest.read(queue: 0, sector: 20, count: data.count).data == data)
            #expect(try QEMUSequence.stop(session, queueCount: 2) == [1, 1])
        }

        @Test("a guest that breaks the ring gets the error eventfd; the ring restarts after GET_VRING_BASE")
        func brokenRingSignalsErrorAndRestarts() throws {
            let backEnd = try InProcessBackEnd()
            defer { backEnd.stop() }
            let started = try StartedFrontEnd.start(backEnd)
            let guest = started.guest
            #expect(try guest.write(sector: 0, pattern(count: 512, seed: 0)) == BlockGuest.statusOK)
            // A head index outside the descriptor table.
            let mark = backEnd.logMark
            guest.queues[0].makeAvailable(head: UInt16(guest.queueSize))
            guest.queues[0].publish()
            try guest.kicks[0].signal()
            #expect(guest.errorSignalled(queue: 0, milliseconds: 5_000))
            #expect(backEnd.logEntry(containing: "descriptorIndexOutOfRange", after: mark, waitingUpTo: 1_000) != nil,
                    "\(backEnd.transcript(after: mark))")
            // The bad head is where the ring stopped; the front end restarts past it.
            let base = try started.session.stopRing(index: 0)
            #expect(base == 1)
            try QEMUSequence.startRing(started.session, guest: guest, index: 0, base: base + 1)
            #expect(try guest.write(sector: 1, pattern(count: 512, seed: 1)) == BlockGuest.statusOK)
        }
    }
}
