import Testing
import VhostSystem
@testable import VhostUserBackend

@Suite("Worker mailbox")
struct WorkerMailboxTests {
    @Test("call and error eventfds not yet picked up are replaced, not queued")
    func notifiersAreCoalesced() throws {
        let mailbox = try WorkerMailbox()
        let calls = try (0..<1000).map { _ in try EventFD() }
        let errors = try (0..<3).map { _ in try EventFD() }
        mailbox.post(.setEnabled(true))
        for call in calls { mailbox.post(.setCall(call)) }
        for error in errors { mailbox.post(.setError(error)) }
        mailbox.post(.setCall(nil))
        mailbox.post(.setEnabled(false))

        let taken = mailbox.takeAll()
        #expect(taken.count == 4)
        guard taken.count == 4 else { return }
        if case .setEnabled(true) = taken[0] {} else { Issue.record("first: \(taken[0])") }
        if case .setError(let error) = taken[1] { #expect(error === errors.last) } else { Issue.record("second: \(taken[1])") }
        if case .setCall(let call) = taken[2] { #expect(call == nil) } else { Issue.record("third: \(taken[2])") }
        if case .setEnabled(false) = taken[3] {} else { Issue.record("fourth: \(taken[3])") }
    }
}
