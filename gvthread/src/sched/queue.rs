//! Per-worker local run queue: a fixed ring owned by one worker role.
//!
//! The design is Go's `runq`: the owner pushes at `tail` (plain store, it is
//! the only writer of `tail`); the owner pops and thieves steal at `head` with
//! a compare-and-swap, so the owner's push/pop take no lock. A thief copies
//! up to half of the victim's entries into its *own* ring beyond its `tail`
//! (invisible to anyone else until it publishes its `tail`) and then claims
//! them with one CAS on the victim's `head`; if the CAS fails somebody else
//! took them first and it retries.
//!
//! Entries are `AtomicU32` slot ids, so a thief reading an entry the owner is
//! overwriting concurrently is a benign race (its CAS then fails) rather than
//! undefined behaviour.

use std::sync::atomic::Ordering;

use crate::loom::AtomicU32;

/// Ring capacity (a power of two). Go's and tokio's rings hold 256; this
/// one 1,024 (4 KiB per role), so a burst of a thousand spawns stays in the
/// ring instead of spilling most of itself into the global queue, one
/// entry at a time there (Go moves its spill under one lock).
#[cfg(not(loom))]
pub(crate) const CAPACITY: u32 = 1024;
/// Ring capacity under loom: tiny, so models reach the overflow path.
#[cfg(loom)]
pub(crate) const CAPACITY: u32 = 4;
const MASK: u32 = CAPACITY - 1;

/// A worker's local run queue of slot ids.
pub(crate) struct LocalQueue {
    head: AtomicU32,
    tail: AtomicU32,
    buf: Box<[AtomicU32]>,
}

impl LocalQueue {
    pub(crate) fn new() -> LocalQueue {
        LocalQueue {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            buf: (0..CAPACITY).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Pushes `slot`; when the ring is full, moves half of it plus `slot` into
    /// `overflow` (the global queue) and returns `true`. Owner only.
    pub(crate) fn push(&self, slot: u32, mut overflow: impl FnMut(u32)) -> bool {
        loop {
            // Acquire: pairs with thieves' CAS on head, so we do not overwrite
            // entries they are still copying.
            let head = self.head.load(Ordering::Acquire);
            let tail = self.tail.load(Ordering::Relaxed); // only we write it
            if tail.wrapping_sub(head) < CAPACITY {
                self.buf[(tail & MASK) as usize].store(slot, Ordering::Relaxed);
                // Release: publishes the entry to thieves and to our own pops.
                self.tail.store(tail.wrapping_add(1), Ordering::Release);
                return false;
            }
            // Full: take half from the head and spill it with `slot`. Once
            // the CAS made those entries ours, nobody else reads them and
            // only we (the owner) ever write the ring: they are read after
            // it, with no copy on the (possibly small) GVThread stack.
            let n = CAPACITY / 2;
            if self.head.compare_exchange(head, head.wrapping_add(n), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                for i in 0..n {
                    overflow(self.buf[(head.wrapping_add(i) & MASK) as usize].load(Ordering::Relaxed));
                }
                overflow(slot);
                return true;
            }
            // A thief made room meanwhile; retry the fast path.
        }
    }

    /// Pushes the entries `next` yields, at most as many as there is room
    /// for (the rest stay in the iterator), publishing them with one store.
    /// Owner only.
    pub(crate) fn push_from(&self, mut next: impl FnMut() -> Option<u32>, max: u32) {
        // Acquire: as in `push`.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Relaxed); // only we write it
        let room = CAPACITY - tail.wrapping_sub(head).min(CAPACITY);
        let mut n = 0;
        while n < room.min(max) {
            let Some(slot) = next() else { break };
            self.buf[(tail.wrapping_add(n) & MASK) as usize].store(slot, Ordering::Relaxed);
            n += 1;
        }
        if n > 0 {
            // Release: publishes the entries to thieves and to our own pops.
            self.tail.store(tail.wrapping_add(n), Ordering::Release);
        }
    }

    /// Pops the oldest entry. Owner only (thieves use `steal_into`).
    pub(crate) fn pop(&self) -> Option<u32> {
        loop {
            let head = self.head.load(Ordering::Acquire);
            let tail = self.tail.load(Ordering::Relaxed);
            if head == tail {
                return None;
            }
            let slot = self.buf[(head & MASK) as usize].load(Ordering::Relaxed);
            // AcqRel: claims the entry against thieves.
            if self.head.compare_exchange(head, head.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return Some(slot);
            }
        }
    }

    /// The oldest entry as of now (a racy snapshot, for a prefetch: a thief
    /// or the owner may take it before the caller looks at it).
    pub(crate) fn peek(&self) -> Option<u32> {
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        (head != tail).then(|| self.buf[(head & MASK) as usize].load(Ordering::Relaxed))
    }

    /// Number of queued entries (a racy snapshot).
    pub(crate) fn len(&self) -> u32 {
        let tail = self.tail.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(CAPACITY)
    }

    /// Whether the queue looks empty (a racy snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Steals about half of `self` into `dst` (which must be empty and owned by
    /// the caller) and returns one stolen entry to run now.
    pub(crate) fn steal_into(&self, dst: &LocalQueue) -> Option<u32> {
        let dst_tail = dst.tail.load(Ordering::Relaxed); // caller owns dst
        loop {
            let head = self.head.load(Ordering::Acquire);
            // Acquire: entries up to tail were written before tail was published.
            let tail = self.tail.load(Ordering::Acquire);
            let avail = tail.wrapping_sub(head);
            if avail == 0 {
                return None;
            }
            if avail > CAPACITY {
                // Inconsistent snapshot (head moved past our tail read); retry.
                continue;
            }
            let n = avail - avail / 2;
            for i in 0..n {
                let v = self.buf[(head.wrapping_add(i) & MASK) as usize].load(Ordering::Relaxed);
                dst.buf[(dst_tail.wrapping_add(i) & MASK) as usize].store(v, Ordering::Relaxed);
            }
            if self.head.compare_exchange(head, head.wrapping_add(n), Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                // Keep the last stolen entry to run; publish the rest.
                let run = dst.buf[(dst_tail.wrapping_add(n - 1) & MASK) as usize].load(Ordering::Relaxed);
                if n > 1 {
                    dst.tail.store(dst_tail.wrapping_add(n - 1), Ordering::Release);
                }
                return Some(run);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn fifo_push_pop() {
        let q = LocalQueue::new();
        for i in 0..10 {
            q.push(i, |_| panic!("no overflow expected"));
        }
        assert_eq!(q.len(), 10);
        for i in 0..10 {
            assert_eq!(q.pop(), Some(i));
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn push_from_takes_at_most_max_and_the_room_left() {
        let q = LocalQueue::new();
        let mut source = 0..10;
        q.push_from(|| source.next(), 4);
        assert_eq!(q.peek(), Some(0));
        assert_eq!((q.len(), source.start), (4, 4), "max bounds the batch");
        for i in 4..CAPACITY - 2 {
            q.push(i + 100, |_| panic!("no overflow expected"));
        }
        let mut source = 0..10;
        q.push_from(|| source.next(), 8);
        assert_eq!((q.len(), source.start), (CAPACITY, 2), "the room left bounds the batch");
        q.push_from(|| panic!("a full queue takes nothing"), 8);
        for i in 0..4 {
            assert_eq!(q.pop(), Some(i));
        }
    }

    #[test]
    fn overflow_spills_half_plus_one() {
        let q = LocalQueue::new();
        let mut spilled = Vec::new();
        for i in 0..CAPACITY {
            assert!(!q.push(i, |s| spilled.push(s)), "push {i} into a ring with room spilled");
        }
        assert!(q.push(CAPACITY, |s| spilled.push(s)), "the push into a full ring says it spilled");
        assert_eq!(spilled.len() as u32, CAPACITY / 2 + 1);
        assert_eq!(q.len(), CAPACITY / 2);
        let mut all: Vec<u32> = spilled;
        while let Some(s) = q.pop() {
            all.push(s);
        }
        all.sort();
        assert_eq!(all, (0..CAPACITY + 1).collect::<Vec<_>>());
    }

    #[test]
    fn steal_takes_half() {
        let a = LocalQueue::new();
        let b = LocalQueue::new();
        for i in 0..8 {
            a.push(i, |_| unreachable!());
        }
        let got = a.steal_into(&b);
        assert!(got.is_some());
        assert_eq!(a.len() + b.len() + 1, 8);
    }

    #[test]
    fn concurrent_steal_loses_nothing() {
        const N: u32 = 200_000;
        let owner = Arc::new(LocalQueue::new());
        let done = Arc::new(AtomicBool::new(false));
        let mut thieves = Vec::new();
        for _ in 0..2 {
            let (owner, done) = (owner.clone(), done.clone());
            thieves.push(std::thread::spawn(move || {
                let mine = LocalQueue::new();
                let mut got = Vec::new();
                loop {
                    if let Some(s) = owner.steal_into(&mine) {
                        got.push(s);
                        while let Some(s) = mine.pop() {
                            got.push(s);
                        }
                    } else if done.load(Ordering::Acquire) && owner.is_empty() {
                        return got;
                    }
                }
            }));
        }
        let mut got = Vec::new();
        let mut spilled = Vec::new();
        for i in 0..N {
            owner.push(i, |s| spilled.push(s));
            if i % 3 == 0
                && let Some(s) = owner.pop()
            {
                got.push(s);
            }
        }
        while let Some(s) = owner.pop() {
            got.push(s);
        }
        done.store(true, Ordering::Release);
        for t in thieves {
            got.extend(t.join().unwrap());
        }
        got.extend(spilled);
        let set: HashSet<u32> = got.iter().copied().collect();
        assert_eq!(got.len(), N as usize, "duplicates or losses");
        assert_eq!(set.len(), N as usize);
    }
}

#[cfg(all(test, not(loom)))]
mod symmetric_tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, AtomicU64};

    /// Two owners that push, pop and steal from each other, as workers do.
    #[test]
    fn symmetric_stealing_never_duplicates() {
        const PER: u32 = 300_000;
        let qs = Arc::new([LocalQueue::new(), LocalQueue::new()]);
        let seen: Arc<Vec<AtomicU32>> = Arc::new((0..2 * PER).map(|_| AtomicU32::new(0)).collect());
        let global = Arc::new(crossbeam_queue::SegQueue::new());
        let done = Arc::new(AtomicU64::new(0));
        let ts: Vec<_> = (0..2usize)
            .map(|me| {
                let (qs, seen, global, done) = (qs.clone(), seen.clone(), global.clone(), done.clone());
                std::thread::spawn(move || {
                    let mine = &qs[me];
                    let other = &qs[1 - me];
                    let mut next = me as u32 * PER;
                    let end = next + PER;
                    loop {
                        // Produce a few.
                        for _ in 0..3 {
                            if next < end {
                                mine.push(next, |s| global.push(s));
                                next += 1;
                            }
                        }
                        // Consume one: local, else global, else steal.
                        let got = mine.pop().or_else(|| global.pop()).or_else(|| other.steal_into(mine));
                        match got {
                            Some(s) => {
                                assert_eq!(
                                    seen[s as usize].fetch_add(1, Ordering::SeqCst),
                                    0,
                                    "entry {s} consumed twice"
                                );
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                            None => {
                                if next >= end && done.load(Ordering::SeqCst) == 2 * PER as u64 {
                                    return;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert!(seen.iter().all(|c| c.load(Ordering::SeqCst) == 1));
    }
}

/// Exhaustive interleavings of owner push/pop against a thief (loom).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// A thief: steals once from `victim` and drains what it got.
    fn steal_all(victim: &LocalQueue) -> Vec<u32> {
        let mine = LocalQueue::new();
        let mut got = Vec::new();
        if let Some(s) = victim.steal_into(&mine) {
            got.push(s);
            while let Some(s) = mine.pop() {
                got.push(s);
            }
        }
        got
    }

    /// Every entry is consumed exactly once: by the owner, by the thief, or
    /// by the overflow path.
    fn check(mut got: Vec<u32>, n: u32) {
        got.sort_unstable();
        assert_eq!(got, (0..n).collect::<Vec<_>>(), "an entry was lost or duplicated");
    }

    #[test]
    fn loom_push_pop_against_steal() {
        loom::model(|| {
            let victim = Arc::new(LocalQueue::new());
            let v = victim.clone();
            let thief = thread::spawn(move || steal_all(&v));
            let mut got = Vec::new();
            for i in 0..3 {
                victim.push(i, |s| got.push(s));
            }
            if let Some(s) = victim.pop() {
                got.push(s);
            }
            got.extend(thief.join().unwrap());
            while let Some(s) = victim.pop() {
                got.push(s);
            }
            check(got, 3);
        });
    }

    #[test]
    fn loom_push_from_against_steal() {
        loom::model(|| {
            let victim = Arc::new(LocalQueue::new());
            // One entry already there, so the thief may take a batch that
            // straddles the published and the unpublished part.
            let mut got = Vec::new();
            victim.push(0, |s| got.push(s));
            let v = victim.clone();
            let thief = thread::spawn(move || steal_all(&v));
            // A batch bigger than the room left: the rest stays behind.
            let mut source = 1..=CAPACITY;
            victim.push_from(|| source.next(), CAPACITY);
            got.extend(source);
            got.extend(thief.join().unwrap());
            while let Some(s) = victim.pop() {
                got.push(s);
            }
            check(got, CAPACITY + 1);
        });
    }

    #[test]
    fn loom_overflow_against_steal() {
        loom::model(|| {
            let victim = Arc::new(LocalQueue::new());
            // Fill the ring so the next push spills half of it.
            let mut got = Vec::new();
            for i in 0..CAPACITY {
                victim.push(i, |s| got.push(s));
            }
            let v = victim.clone();
            let thief = thread::spawn(move || steal_all(&v));
            victim.push(CAPACITY, |s| got.push(s));
            got.extend(thief.join().unwrap());
            while let Some(s) = victim.pop() {
                got.push(s);
            }
            check(got, CAPACITY + 1);
        });
    }

    #[test]
    fn loom_two_thieves() {
        loom::model(|| {
            let victim = Arc::new(LocalQueue::new());
            let mut got = Vec::new();
            for i in 0..2 {
                victim.push(i, |s| got.push(s));
            }
            let thieves: Vec<_> = (0..2)
                .map(|_| {
                    let v = victim.clone();
                    thread::spawn(move || steal_all(&v))
                })
                .collect();
            for t in thieves {
                got.extend(t.join().unwrap());
            }
            while let Some(s) = victim.pop() {
                got.push(s);
            }
            check(got, 2);
        });
    }
}
