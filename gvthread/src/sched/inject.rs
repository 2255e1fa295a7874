//! Global run queues, one per priority: spawns from outside, local-queue
//! overflow, and GVThreads whose priority is not `Normal`.

use crossbeam_queue::SegQueue;

use crate::Priority;

/// The four global queues, indexed by `Priority as usize`.
pub(crate) struct GlobalQueues {
    queues: [SegQueue<u32>; 4],
    /// Normal GVThreads that were preempted (used up a time slice): taken
    /// after fresh and woken work, so a GVThread woken by a timer or a
    /// message runs before CPU hogs that already had their turn (every 61st
    /// decision looks here first, so hogs never starve).
    preempted: SegQueue<u32>,
}

impl GlobalQueues {
    pub(crate) fn new() -> GlobalQueues {
        GlobalQueues {
            queues: [SegQueue::new(), SegQueue::new(), SegQueue::new(), SegQueue::new()],
            preempted: SegQueue::new(),
        }
    }

    pub(crate) fn push_preempted(&self, slot: u32) {
        self.preempted.push(slot);
    }

    pub(crate) fn pop_preempted(&self) -> Option<u32> {
        self.preempted.pop()
    }

    pub(crate) fn has_preempted(&self) -> bool {
        !self.preempted.is_empty()
    }

    pub(crate) fn push(&self, prio: Priority, slot: u32) {
        self.queues[prio as usize].push(slot);
    }

    pub(crate) fn pop(&self, prio: Priority) -> Option<u32> {
        self.queues[prio as usize].pop()
    }

    /// How many GVThreads of `prio` wait (a racy snapshot).
    pub(crate) fn len(&self, prio: Priority) -> usize {
        self.queues[prio as usize].len()
    }

    pub(crate) fn is_empty(&self, prio: Priority) -> bool {
        self.queues[prio as usize].is_empty()
    }

    /// Whether a Critical or High GVThread waits.
    #[inline]
    pub(crate) fn has_urgent(&self) -> bool {
        !self.queues[0].is_empty() || !self.queues[1].is_empty()
    }
}
