//! Home queues: the run queues of GVThreads bound to one worker role.
//!
//! A started GVThread runs only on the OS threads of its home role (see the
//! `sched` module docs), so whoever makes it runnable (a waker on any thread,
//! the timer thread, the preemption handler) must put it on *that* role's
//! queue. A [`HomeQueue`] is a multi-producer, single-consumer FIFO of slot
//! ids with these properties:
//!
//! * **No allocation, no lock**: it is intrusive. Each slot has one link word
//!   in a side table ([`Links`]); a GVThread is on at most one queue at a time,
//!   so one link per slot suffices. Pushing is safe from a signal handler.
//! * **No window where a frozen producer blocks the consumer**: a push is a
//!   single compare-and-swap that either publishes the entry or does nothing
//!   (unlike Vyukov's intrusive queue, whose producers leave a half-linked
//!   node between their swap and their store).
//!
//! # Algorithm
//!
//! Producers push onto a Treiber stack (`pushed`, newest first): write the
//! link, then CAS the top. The consumer (only ever the machine holding the
//! role, or the preemption handler running on that machine's thread between
//! two instructions of a GVThread, never both at once) keeps a private FIFO
//! (`head`): when it is empty it takes the whole stack with one swap and
//! reverses it. Batches are taken in push order and each batch is reversed to
//! oldest-first, so the queue is FIFO overall. The consumer never pops single
//! entries off the shared stack, so there is no ABA problem.
//!
//! Ordering: the `Release` CAS of a push pairs with the `Acquire` swap of the
//! consumer, so the link (and everything the producer wrote before queueing
//! the GVThread, such as its saved context) is visible to the consumer.
//! Consumer ownership moves with the role (`Machine::give_role` releases,
//! `wait_for_role` acquires).

use std::sync::atomic::Ordering;

use crate::loom::AtomicU32;

/// "No slot": the end of a list.
pub(crate) const NIL: u32 = u32::MAX;

/// One link word per slot id, shared by every home queue of a runtime.
///
/// Slot ids range over every chunk a pool could ever reserve (all stack
/// sizes), far more than are alive at once, so the table is a reservation
/// of address space (`MAP_NORESERVE`): a page of links costs memory only
/// once a slot id in its range was queued.
pub(crate) struct Links {
    #[cfg(not(loom))]
    table: std::ptr::NonNull<AtomicU32>,
    #[cfg(loom)]
    table: Box<[AtomicU32]>,
    len: usize,
}

// SAFETY: the table is only accessed through atomics.
unsafe impl Send for Links {}
// SAFETY: as above.
unsafe impl Sync for Links {}

impl Links {
    /// A table for slot ids `0..capacity`.
    ///
    /// # Panics
    /// If the address space cannot be reserved (a runtime cannot work
    /// without it; the pool reserved far more already).
    #[cfg(not(loom))]
    pub(crate) fn new(capacity: usize) -> Links {
        let len = capacity.max(1);
        let bytes = len.checked_mul(std::mem::size_of::<AtomicU32>()).expect("link table size overflows");
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // affected. Zero-filled pages are valid `AtomicU32`s.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "gvthread: cannot reserve {bytes} bytes for the run-queue links");
        Links { table: std::ptr::NonNull::new(p.cast()).expect("mmap returned null"), len }
    }

    /// A table for slot ids `0..capacity` (loom models: a plain vector).
    #[cfg(loom)]
    pub(crate) fn new(capacity: usize) -> Links {
        Links { table: (0..capacity).map(|_| AtomicU32::new(0)).collect(), len: capacity }
    }

    #[inline]
    fn word(&self, slot: u32) -> &AtomicU32 {
        assert!((slot as usize) < self.len, "slot id {slot} beyond the link table");
        #[cfg(not(loom))]
        // SAFETY: `slot < len`, the mapping holds `len` words and lives as
        // long as `self`.
        return unsafe { &*self.table.as_ptr().add(slot as usize) };
        #[cfg(loom)]
        return &self.table[slot as usize];
    }

    #[inline]
    fn get(&self, slot: u32) -> u32 {
        self.word(slot).load(Ordering::Relaxed)
    }

    #[inline]
    fn set(&self, slot: u32, next: u32) {
        self.word(slot).store(next, Ordering::Relaxed);
    }
}

#[cfg(not(loom))]
impl Drop for Links {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of this size, unmapped once.
        unsafe { libc::munmap(self.table.as_ptr().cast(), self.len * std::mem::size_of::<AtomicU32>()) };
    }
}

/// A multi-producer, single-consumer FIFO of slot ids (see the module docs).
pub(crate) struct HomeQueue {
    /// Pushed entries, newest first (a Treiber stack through `Links`).
    pushed: AtomicU32,
    /// The consumer's private FIFO, oldest first. Atomic only so that other
    /// threads may peek at emptiness; written by the consumer alone.
    head: AtomicU32,
}

impl Default for HomeQueue {
    fn default() -> Self {
        HomeQueue::new()
    }
}

impl HomeQueue {
    pub(crate) fn new() -> HomeQueue {
        HomeQueue { pushed: AtomicU32::new(NIL), head: AtomicU32::new(NIL) }
    }

    /// Appends `slot`. Any thread, signal handlers included. `slot` must not
    /// be on any queue.
    #[inline]
    pub(crate) fn push(&self, links: &Links, slot: u32) {
        let mut top = self.pushed.load(Ordering::Relaxed);
        loop {
            links.set(slot, top);
            // Release: the link and the GVThread's saved state are visible to
            // the consumer that takes this entry.
            match self.pushed.compare_exchange_weak(top, slot, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(t) => top = t,
            }
        }
    }

    /// Takes the oldest entry. Consumer only (the holder of the role).
    #[inline]
    pub(crate) fn pop(&self, links: &Links) -> Option<u32> {
        let head = self.head.load(Ordering::Relaxed);
        if head != NIL {
            self.head.store(links.get(head), Ordering::Relaxed);
            return Some(head);
        }
        if self.pushed.load(Ordering::Relaxed) == NIL {
            return None;
        }
        // Acquire: pairs with the pushes' Release.
        let mut stack = self.pushed.swap(NIL, Ordering::Acquire);
        // Reverse the batch (newest first) into oldest-first order.
        let mut fifo = NIL;
        while stack != NIL {
            let next = links.get(stack);
            links.set(stack, fifo);
            fifo = stack;
            stack = next;
        }
        if fifo == NIL {
            return None;
        }
        self.head.store(links.get(fifo), Ordering::Relaxed);
        Some(fifo)
    }

    /// Whether the queue looks empty (a racy snapshot from any thread).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed) == NIL && self.pushed.load(Ordering::Relaxed) == NIL
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_across_batches() {
        let links = Links::new(16);
        let q = HomeQueue::new();
        assert!(q.is_empty());
        q.push(&links, 3);
        q.push(&links, 1);
        assert_eq!(q.pop(&links), Some(3));
        q.push(&links, 7);
        q.push(&links, 0);
        assert_eq!(q.pop(&links), Some(1));
        assert_eq!(q.pop(&links), Some(7));
        assert_eq!(q.pop(&links), Some(0));
        assert_eq!(q.pop(&links), None);
        assert!(q.is_empty());
    }

    #[test]
    fn many_producers_lose_nothing() {
        use std::sync::Arc;
        const PER: u32 = 20_000;
        let links = Arc::new(Links::new(4 * PER as usize));
        let q = Arc::new(HomeQueue::new());
        let producers: Vec<_> = (0..4u32)
            .map(|p| {
                let (links, q) = (links.clone(), q.clone());
                std::thread::spawn(move || {
                    for i in 0..PER {
                        q.push(&links, p * PER + i);
                    }
                })
            })
            .collect();
        let mut seen = vec![false; 4 * PER as usize];
        let mut last = [None::<u32>; 4];
        let mut got = 0;
        while got < 4 * PER {
            if let Some(s) = q.pop(&links) {
                assert!(!std::mem::replace(&mut seen[s as usize], true), "slot {s} popped twice");
                // Per producer, entries come out in push order.
                let p = (s / PER) as usize;
                assert!(last[p].is_none_or(|l| l < s), "producer {p} out of order");
                last[p] = Some(s);
                got += 1;
            } else {
                std::thread::yield_now();
            }
        }
        for t in producers {
            t.join().unwrap();
        }
        assert_eq!(q.pop(&links), None);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two producers against the consumer: every entry is taken exactly once,
    /// per-producer order is kept.
    #[test]
    fn loom_home_queue_two_producers() {
        loom::model(|| {
            let links = Arc::new(Links::new(4));
            let q = Arc::new(HomeQueue::new());
            let ts: Vec<_> = [(0u32, 1u32), (2, 3)]
                .into_iter()
                .map(|(a, b)| {
                    let (links, q) = (links.clone(), q.clone());
                    loom::thread::spawn(move || {
                        q.push(&links, a);
                        q.push(&links, b);
                    })
                })
                .collect();
            let mut got = Vec::new();
            if let Some(s) = q.pop(&links) {
                got.push(s);
            }
            for t in ts {
                t.join().unwrap();
            }
            while let Some(s) = q.pop(&links) {
                got.push(s);
            }
            let mut sorted = got.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3]);
            let pos = |x: u32| got.iter().position(|&g| g == x).unwrap();
            assert!(pos(0) < pos(1) && pos(2) < pos(3));
        });
    }
}
