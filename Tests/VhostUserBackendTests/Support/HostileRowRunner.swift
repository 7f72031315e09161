import Testing
import VhostSystem
import VhostUserFrontEnd
import VhostUserProtocol
import VirtioCore
import VirtioSpec

/// Plays one `HostileRow` against a back end and checks everything but the leak counts, which
/// depend on where the back end runs (the caller checks them with the returned `SentFiles`).
enum HostileRowRunner {
    static func run(_ row: HostileRow, on backEnd: BackEndUnderTest) throws -> SentFiles {
        let files = SentFiles()
        let scene = try setUp(row.stage, on: backEnd, files: files)
        let mark = backEnd.logMark
        do {
            try row.act(scene)
        } catch {
            Issue.record("row \(row.name): the action failed: \(error); logged:\n\(backEnd.transcript(after: mark))")
        }
        checkOutcome(row, scene: scene)
        if let text = row.logged {
            #expect(backEnd.logEntry(containing: text, after: mark, waitingUpTo: 5_000) != nil,
                    "row \(row.name): no log entry containing \"\(text)\"; logged:\n\(backEnd.transcript(after: mark))")
        }
        if case .gaveUp = row.outcome {
            // The stuck front end stays connected: the back end must have given up on it.
            expectServesNewFrontEnd(backEnd)
            scene.session.socket.shutdown()
        } else {
            // The back end serves one front end at a time: this one leaves before the next comes.
            scene.session.socket.shutdown()
            expectServesNewFrontEnd(backEnd)
        }
        return files
    }

    /// Connects and plays QEMU 7.2's steps up to `stage`.
    private static func setUp(_ stage: HostileRow.Stage, on backEnd: BackEndUnderTest, files: SentFiles) throws -> HostileScene {
        let session = try backEnd.connect()
        let guest = try BlockGuest(regions: [GuestRAM.RegionSpec(guestPhysicalStart: GuestPhysicalAddress(0), size: 2 << 20)])
        files.keepAlive(guest)
        for region in guest.ram.regions { files.track(region.descriptor, ownMappings: 1, label: "guest RAM") }
        for eventfd in guest.kicks + guest.calls + guest.errors { files.track(eventfd.descriptor, label: "ring eventfd") }
        var features: VirtioFeatures = []
        if stage != .connected {
            features = try QEMUSequence.connect(session).features
            try session.setFeatures(features)
        }
        if stage == .memoryInstalled || stage == .ringsRunning {
            try session.setMemoryTable(guest.memoryRegions)
        }
        if stage == .ringsRunning {
            for index in guest.queues.indices {
                try QEMUSequence.startRing(session, guest: guest, index: index)
                try session.enableRing(index: UInt32(index), true)
            }
            #expect(try guest.write(sector: 0, pattern(count: 512, seed: 0)) == BlockGuest.statusOK)
        }
        return HostileScene(session: session, guest: guest, features: features, files: files, backEnd: backEnd)
    }

    private static func checkOutcome(_ row: HostileRow, scene: HostileScene) {
        do {
            switch row.outcome {
            case .closed:
                do {
                    let reply = try scene.reply(milliseconds: 5_000)
                    Issue.record("row \(row.name): expected the connection closed, got \(reply.map { "\($0.header)" } ?? "silence")")
                } catch FrontEndError.connectionClosed {
                    // Expected.
                }
            case .refused(let request):
                let reply = try #require(try scene.reply(milliseconds: 5_000), "row \(row.name): no failure ack")
                #expect(reply.header.request == request.rawValue, "row \(row.name)")
                #expect(reply.header.flags.rawValue == 0x5, "row \(row.name)")
                #expect(reply.payload.count == 8 && reply.payload != [UInt8](repeating: 0, count: 8),
                        "row \(row.name): the ack must report failure, got \(reply.payload)")
                _ = try scene.session.send(.getFeatures)
            case .queueBroken(let queue):
                #expect(scene.guest.errorSignalled(queue: queue, milliseconds: 5_000), "row \(row.name): error eventfd")
                _ = try scene.session.send(.getFeatures)
                let before = scene.guest.queues[queue].usedIndex
                try scene.guest.submit(queue: queue, type: BlockGuest.RequestType.flush.rawValue, sector: 0)
                // The worker, woken by a command, takes a whole turn (and the kick, if it still
                // watches it: a ring broken at start does not) without serving the broken ring.
                #expect(try WorkerThreads.turn(queue: queue, session: scene.session, call: scene.guest.calls[queue],
                                               pid: scene.backEnd.processID), "row \(row.name): the worker did not turn")
                #expect(scene.guest.queues[queue].usedIndex == before, "row \(row.name): a broken ring must not run")
                _ = try scene.session.stopRing(index: UInt32(queue))
            case .served:
                _ = try scene.session.send(.getFeatures)
            case .gaveUp:
                break
            }
        } catch {
            Issue.record("row \(row.name): \(error)")
        }
    }
}
