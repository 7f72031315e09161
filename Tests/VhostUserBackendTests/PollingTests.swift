#if canImport(Glibc)
import Glibc
#endif
import Testing
import VhostSystem
import VhostUserBackend
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore

extension BackEndIntegration {
    /// Adaptive polling (`QueuePolling`): after a batch the worker watches the ring for a
    /// while with notifications off, so a request made available without a kick is served;
    /// without polling such a request waits for a kick.
    @Suite("Queue polling")
    struct PollingTests {
        private func startedGuest(_ backEnd: InProcessBackEnd) throws -> (FrontEndSession, BlockGuest) {
            let session = try backEnd.connect()
            let negotiated = try QEMUSequence.connect(session)
            let guest = try BlockGuest(eventIndex: negotiated.features.contains(.eventIndex))
            try QEMUSequence.start(session, guest: guest, features: negotiated.features, memory: .setMemTable)
            return (session, guest)
        }

        @Test("while polling, a request made available without a kick is served")
        func pollingServesWithoutKick() throws {
            // A window far longer than the test needs, so the timing cannot make it flaky.
            let backEnd = try InProcessBackEnd(polling: QueuePolling(maximumNanoseconds: 2_000_000_000))
            defer { backEnd.stop() }
            let (session, guest) = try startedGuest(backEnd)
            defer { withExtendedLifetime(session) {} }
            #expect(try guest.write(queue: 0, sector: 8, pattern(count: 512, seed: 3)) == BlockGuest.statusOK)
            // The write's completion is published after the batch loop ended; the worker then
            // polls for 2 s before it turns notifications on and looks once more. A request
            // served without a kick within 1 s was found by polling.
            let silent = try guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 8, inLength: 512, kick: false)
            let done = try guest.complete([silent], milliseconds: 1_000)
            #expect(done[0].status == BlockGuest.statusOK)
            #expect(done[0].data == pattern(count: 512, seed: 3))
        }

        @Test("without polling, a request made available without a kick waits for the kick")
        func noPollingWaitsForKick() throws {
            let backEnd = try InProcessBackEnd(polling: .off)
            defer { backEnd.stop() }
            let (session, guest) = try startedGuest(backEnd)
            defer { withExtendedLifetime(session) {} }
            #expect(try guest.write(queue: 0, sector: 8, pattern(count: 512, seed: 4)) == BlockGuest.statusOK)
            // Once the worker sleeps in epoll_wait it is past its re-check after the batch (which
            // would rightly see the request), and only a kick or a command wakes it.
            #expect(WorkerThreads.waitUntilSleepingInEpoll(queue: 0))
            let silent = try guest.submit(queue: 0, type: BlockGuest.RequestType.read.rawValue, sector: 8, inLength: 512, kick: false)
            #expect(WorkerThreads.isSleepingInEpoll(queue: 0) && guest.queues[0].usedIndex == 1, "served without a kick")
            try guest.kicks[0].signal()
            #expect(try guest.complete([silent], milliseconds: 5_000)[0].status == BlockGuest.statusOK)
        }
    }
}
