import VhostSystem
import VirtioCore

/// Adaptive polling (`QueuePolling`): after a batch that emptied the ring, watch avail->idx
/// for a while instead of sleeping.
extension QueueWorker {
    /// After a batch that took requests or followed completions (`worked`), polls for the next
    /// request within the current window, reaping completions as they come (the driver
    /// answers them with its next requests, so no wakeup is spent on either); then turns
    /// notifications on (true if requests came meanwhile) and notes when the worker went to
    /// sleep. Works on `ring` itself: reaping publishes into it.
    func finishBatch(worked: Bool) -> Bool {
        if worked, pollBudgetNanoseconds > 0 {
            let deadline = MonotonicDeadline.now() &+ pollBudgetNanoseconds
            var spins = 0
            while true {
                if ring?.hasPendingAvailable == true { return true }
                if handler?.hasCompletions == true { reapCompletions() }
                // A command (stop, new memory table, IOTLB change) ends the poll at once; the
                // ring goes to sleep normally and the command is taken from the mailbox.
                if mailbox.hasCommands { break }
                SharedMemoryOrdering.spinWaitHint()
                spins &+= 1
                if spins & 63 == 0, MonotonicDeadline.now() >= deadline { break }
            }
            pollBudgetNanoseconds = pollBudgetNanoseconds < 2_000 ? 0 : pollBudgetNanoseconds / 2
        }
        let requestsCame = ring?.enableNotifications() == true
        logUsedRing()  // avail_event or the flags changed
        if requestsCame { return true }
        sleepingSince = MonotonicDeadline.now()
        return false
    }
}
