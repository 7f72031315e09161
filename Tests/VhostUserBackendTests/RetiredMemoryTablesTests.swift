import Testing
import VirtioCore
@testable import VhostUserBackend

@Suite("Memory tables replaced with requests in flight")
struct RetiredMemoryTablesTests {
    private static func answered(_ completion: CommandCompletion) -> Bool {
        completion.wait(milliseconds: 0) != nil
    }

    @Test("a change is answered at once with nothing in flight, else after its requests, in the order the tables were replaced")
    func answersInOrder() {
        var tables = RetiredMemoryTables()
        tables.prepare(queueSize: 8)
        let idle = CommandCompletion()
        #expect(tables.retire(GuestMemory(), answering: idle) === idle)  // the caller answers it

        tables.submitted(head: 1)
        tables.submitted(head: 2)
        let first = CommandCompletion()
        #expect(tables.retire(GuestMemory(), answering: first) == nil)  // heads 1 and 2 use the table it replaced
        tables.submitted(head: 3)
        let second = CommandCompletion()
        #expect(tables.retire(GuestMemory(), answering: second) == nil)  // head 3 uses the next one
        let third = CommandCompletion()
        #expect(tables.retire(GuestMemory(), answering: third) == nil)  // nothing uses the one after, but older ones wait
        #expect(tables.waitingCount == 3)

        tables.completed(head: 3)
        #expect(!Self.answered(second))  // an older table's request is still in flight
        #expect(!Self.answered(third))
        tables.completed(head: 1)
        #expect(!Self.answered(first))
        tables.completed(head: 2)
        #expect(Self.answered(first) && Self.answered(second) && Self.answered(third))
        #expect(tables.waitingCount == 0)

        // A request of the current table completing answers nothing and leaves nothing behind.
        tables.submitted(head: 4)
        tables.completed(head: 4)
        let last = CommandCompletion()
        #expect(tables.retire(GuestMemory(), answering: last) === last)
    }
}
