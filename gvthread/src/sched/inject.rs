//! Global run queues, one per priority: spawns from outside, local-queue
//! overflow, and GVThreads whose priority is not `Normal`.

use crossbeam_queue::SegQueue;

use crate::Priority;

/// The four global queues, indexed by `Priority as usize`.
pub(crate) struct GlobalQueues {
    queues: [SegQueue<u32>; 4],
}

impl GlobalQueues {
    pub(crate) fn new() -> GlobalQueues {
        GlobalQueues { queues: [SegQueue::new(), SegQueue::new(), SegQueue::new(), SegQueue::new()] }
    }

    pub(crate) fn push(&self, prio: Priority, slot: u32) {
        self.queues[prio as usize].push(slot);
    }

    pub(crate) fn pop(&self, prio: Priority) -> Option<u32> {
        self.queues[prio as usize].pop()
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
