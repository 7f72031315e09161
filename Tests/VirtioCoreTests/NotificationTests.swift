import Testing
import VhostSystem
import VhostUserFrontEnd
import VirtioCore
import VirtioSpec

@Suite struct NotificationTests {
    /// Makes `count` one-buffer chains available, pops them, completes them and publishes.
    private func complete(_ count: Int, in fixture: GuestFixture) throws {
        for _ in 0..<count { try fixture.driver.addChain(readable: [(gpa(0x8000), 16)], indirect: true) }
        fixture.driver.publish()
        for _ in 0..<count {
            let chain = try #require(try fixture.pop())
            fixture.device.pushUsed(head: chain.headIndex, writtenLength: 0)
        }
        fixture.device.publishUsed()
        _ = fixture.driver.takeUsed()
    }

    // MARK: Without EVENT_IDX

    @Test func notifiesUnlessTheDriverSetNoInterrupt() throws {
        let fixture = try GuestFixture()
        try complete(1, in: fixture)
        #expect(fixture.needsNotification())
        fixture.driver.disableInterrupts()
        try complete(1, in: fixture)
        #expect(!fixture.needsNotification())
        #expect(!fixture.driver.enableInterrupts())
        try complete(1, in: fixture)
        #expect(fixture.needsNotification())
    }

    @Test func doesNotNotifyWhenNothingWasPublishedSinceTheLastDecision() throws {
        let fixture = try GuestFixture()
        try complete(2, in: fixture)
        #expect(fixture.needsNotification())
        #expect(!fixture.needsNotification())
        // Pushed but not published does not count either.
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)])
        fixture.driver.publish()
        let chain = try #require(try fixture.pop())
        fixture.device.pushUsed(head: chain.headIndex, writtenLength: 0)
        #expect(!fixture.needsNotification())
        fixture.device.publishUsed()
        #expect(fixture.needsNotification())
    }

    @Test func togglesNoNotifyToSuppressKicks() throws {
        let fixture = try GuestFixture()
        fixture.device.disableNotifications()
        #expect(fixture.driver.usedFlags == SplitRing.usedFlagNoNotify)
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)])
        fixture.driver.publish()
        #expect(!fixture.driver.needsKick())
        // Re-enabling reports the buffer that arrived while kicks were off.
        #expect(fixture.enableNotifications())
        #expect(fixture.driver.usedFlags == 0)
        _ = try fixture.pop()
        #expect(!fixture.enableNotifications())
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)])
        fixture.driver.publish()
        #expect(fixture.driver.needsKick())
    }

    // MARK: With EVENT_IDX

    @Test func firstDecisionWithEventIndexAlwaysNotifies() throws {
        let fixture = try GuestFixture(features: [.eventIndex, .indirectDescriptors])
        fixture.driver.setUsedEvent(1000)
        #expect(fixture.needsNotification())
        #expect(!fixture.needsNotification())
    }

    @Test func notifiesOnlyWhenUsedIndexCrossesUsedEvent() throws {
        let fixture = try GuestFixture(features: [.eventIndex, .indirectDescriptors])
        _ = fixture.needsNotification()          // first decision, used idx 0
        fixture.driver.setUsedEvent(2)                  // interrupt when the element at index 2 is used
        try complete(1, in: fixture)                    // used idx 1
        #expect(!fixture.needsNotification())
        try complete(1, in: fixture)                    // used idx 2
        #expect(!fixture.needsNotification())
        try complete(1, in: fixture)                    // used idx 3: the element at 2 was written
        #expect(fixture.needsNotification())
        try complete(1, in: fixture)                    // used idx 4: event 2 is behind
        #expect(!fixture.needsNotification())
    }

    @Test func notifiesOnceForABatchThatCrossesUsedEvent() throws {
        let fixture = try GuestFixture(features: [.eventIndex, .indirectDescriptors])
        _ = fixture.needsNotification()
        fixture.driver.setUsedEvent(1)
        try complete(5, in: fixture)                    // 0 → 5 crosses 1
        #expect(fixture.needsNotification())
        #expect(!fixture.needsNotification())
    }

    @Test func eventIndexDecisionsAcrossTheU16Wrap() throws {
        let fixture = try GuestFixture(features: [.eventIndex, .indirectDescriptors], startIndex: 65533)
        _ = fixture.needsNotification()          // signalled at 65533
        fixture.driver.setUsedEvent(65535)
        try complete(1, in: fixture)                    // 65534
        #expect(!fixture.needsNotification())
        try complete(1, in: fixture)                    // 65535
        #expect(!fixture.needsNotification())
        try complete(1, in: fixture)                    // 0: the element at 65535 was written
        #expect(fixture.device.usedIndex == 0)
        #expect(fixture.needsNotification())

        // A batch that wraps: 0 → 3 with used_event 1.
        fixture.driver.setUsedEvent(1)
        try complete(3, in: fixture)
        #expect(fixture.needsNotification())

        // used_event just behind the wrap, batch from 3 to 5: not crossed.
        fixture.driver.setUsedEvent(65535)
        try complete(2, in: fixture)
        #expect(!fixture.needsNotification())
    }

    @Test func needsEventMatchesTheSpecFormula() {
        // vring_need_event(event, new, old) = (u16)(new - event - 1) < (u16)(new - old)
        #expect(SplitRing.needsEvent(event: 0, new: 1, old: 0))
        #expect(!SplitRing.needsEvent(event: 1, new: 1, old: 0))
        #expect(SplitRing.needsEvent(event: 65535, new: 0, old: 65535))
        #expect(SplitRing.needsEvent(event: 65535, new: 2, old: 65534))
        #expect(!SplitRing.needsEvent(event: 65533, new: 2, old: 65534))
        #expect(!SplitRing.needsEvent(event: 7, new: 7, old: 7))
        for old in [UInt16(0), 100, 65530, 65535] {
            for distance in [UInt16(1), 2, 5] {
                let new = old &+ distance
                for offset in 0..<UInt16(8) {
                    let event = old &+ offset
                    #expect(SplitRing.needsEvent(event: event, new: new, old: old) == (offset < distance))
                }
            }
        }
    }

    @Test func enableNotificationsPublishesAvailEventAndCatchesLateBuffers() throws {
        let fixture = try GuestFixture(features: [.eventIndex, .indirectDescriptors])
        #expect(!fixture.enableNotifications())
        #expect(fixture.driver.availableEvent == 0)

        // The driver adds one buffer: avail idx 0 → 1 crosses avail_event 0, so it kicks.
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)], indirect: true)
        fixture.driver.publish()
        #expect(fixture.driver.needsKick())
        // While the device has not re-armed, further buffers do not kick.
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)], indirect: true)
        fixture.driver.publish()
        #expect(!fixture.driver.needsKick())

        // The worker drains, then re-arms: nothing new arrived.
        _ = try fixture.pop()
        _ = try fixture.pop()
        fixture.device.disableNotifications()   // a no-op with EVENT_IDX
        #expect(!fixture.enableNotifications())
        #expect(fixture.driver.availableEvent == 2)

        // A buffer that arrives between the drain and the re-arm is reported, not lost.
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)], indirect: true)
        fixture.driver.publish()
        _ = fixture.driver.needsKick()
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)], indirect: true)
        fixture.driver.publish()
        #expect(!fixture.driver.needsKick())            // avail_event still 2: no kick for the 4th
        _ = try fixture.pop()                           // the worker handles the 3rd...
        #expect(fixture.enableNotifications())   // ...and sees the 4th when re-arming
        #expect(fixture.driver.availableEvent == 3)
    }

    @Test func driverKickDecisionAcrossTheU16Wrap() throws {
        let fixture = try GuestFixture(features: [.eventIndex, .indirectDescriptors], startIndex: 65535)
        #expect(!fixture.enableNotifications())
        #expect(fixture.driver.availableEvent == 65535)
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)], indirect: true)
        try fixture.driver.addChain(readable: [(gpa(0x8000), 16)], indirect: true)
        fixture.driver.publish()                        // 65535 → 1 crosses 65535
        #expect(fixture.driver.needsKick())
        #expect(try fixture.pop() != nil)
        #expect(try fixture.pop() != nil)
        #expect(fixture.device.nextAvailableIndex == 1)
        #expect(!fixture.enableNotifications())
        #expect(fixture.driver.availableEvent == 1)
    }
}
