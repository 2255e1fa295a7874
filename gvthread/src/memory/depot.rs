//! The slot depot: free slots passed between worker roles in batches.
//!
//! When one role spawns and another runs (and ends) what it spawns, every
//! slot travels from the runner's side to the spawner's. Through the pool's
//! free stack that costs, per GVThread, a push and a pop on one shared head
//! plus the slot's link and pool-state words, each a cache line the other
//! core wrote last: a profile of a 1M burst on 2 workers put a third of the
//! spawner's time on those misses. Go batches the same traffic (`gfput`
//! moves half of a P's free list to the global one, `gfget` takes a batch
//! back). Here a role whose [`SlotCache`] is full moves its older half into
//! the depot, and a role whose cache is empty takes a batch from it: one
//! short lock and a line or two of ids per [`SlotDepot::BATCH`] GVThreads.
//!
//! Slots in the depot stay `IN_USE` in the pool, as in a role's cache (no
//! pool-state change, no free-stack traffic). The pool reserves
//! [`SlotDepot::CAPACITY`] extra ids for them, as it does for the caches.
//! A role about to sleep empties the depot with its cache
//! (`Shared::return_cached_slots`), so an idle runtime's chunks can still be
//! given back whole; and the scavenger empties a depot nobody touched for
//! [`IDLE_BEFORE_SCAVENGE`] (`SlotPool::housekeep`), so a busy runtime that
//! stopped spawning does not keep its memory either. Only slots of the
//! runtime's default stack class enter.
//!
//! The depot holds up to 1,024 slots (32 role caches): a batch of 1,000
//! GVThreads spawned and joined by one role then cycles through its cache
//! and the depot without touching the free stack (four atomic
//! read-modify-writes per slot there: pop, pool state, push, scavenger
//! arming). At most about 8 MiB of warm stacks and page tables stay out of
//! the scavenger's reach, for two to four seconds after the depot's last
//! use.
//!
//! Taking from an empty depot, or putting into a full one, reads one atomic
//! and takes no lock: a role spawning a burst finds it empty at every spawn.
//! The lock is taken only inside runtime sections (exit's post-switch
//! action, spawn, a role going to sleep), where forced preemption never
//! freezes its holder (design-notes §2b); the timer thread only tries it
//! (`drain_if_unused`), so it never waits for a role's thread; and
//! nothing under it allocates or takes another lock: the vector's room is
//! reserved up front.
//!
//! [`IDLE_BEFORE_SCAVENGE`]: super::scavenge::IDLE_BEFORE_SCAVENGE

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::slots::SlotCache;

/// Free slots of the default class held for the next role that runs out
/// (see the module docs).
pub(crate) struct SlotDepot {
    slots: Mutex<Vec<u32>>,
    /// How many slots `slots` holds: written under the lock, read without
    /// it as a hint (a stale read only skips or wastes one lock).
    len: AtomicUsize,
    /// Set by every put and take; cleared by the scavenger's look
    /// ([`drain_if_unused`](Self::drain_if_unused)).
    touched: AtomicBool,
}

impl SlotDepot {
    /// Most slots the depot holds; beyond, they go back to the pool.
    pub(crate) const CAPACITY: usize = 32 * SlotCache::CAPACITY;
    /// Slots moved at a time: half a cache.
    pub(crate) const BATCH: usize = SlotCache::CAPACITY / 2;

    pub(crate) fn new() -> SlotDepot {
        SlotDepot {
            slots: Mutex::new(Vec::with_capacity(Self::CAPACITY)),
            len: AtomicUsize::new(0),
            touched: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Slots held now (a hint: others may change it at once).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Takes in as many of `slots` as there is room for; returns how many
    /// (the first ones). Call inside a runtime section.
    pub(crate) fn put(&self, slots: &[u32]) -> usize {
        if self.len() >= Self::CAPACITY {
            return 0;
        }
        let mut d = self.lock();
        let n = slots.len().min(Self::CAPACITY - d.len());
        d.extend_from_slice(&slots[..n]);
        self.len.store(d.len(), Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
        n
    }

    /// Moves up to `out.len()` slots into `out`, the newest first taken;
    /// returns how many. Call inside a runtime section.
    pub(crate) fn take(&self, out: &mut [u32]) -> usize {
        if self.len() == 0 {
            return 0;
        }
        self.take_locked(&mut self.lock(), out)
    }

    /// [`take`](Self::take) from the locked vector `d`.
    fn take_locked(&self, d: &mut Vec<u32>, out: &mut [u32]) -> usize {
        let n = out.len().min(d.len());
        let from = d.len() - n;
        out[..n].copy_from_slice(&d[from..]);
        d.truncate(from);
        self.len.store(from, Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
        n
    }

    /// Empties the depot into `release` (a role about to sleep), a batch at
    /// a time; `release` runs with the lock dropped.
    pub(crate) fn drain(&self, mut release: impl FnMut(u32)) {
        let mut buf = [0u32; Self::BATCH];
        loop {
            let n = self.take(&mut buf);
            for &s in &buf[..n] {
                release(s);
            }
            if n < buf.len() {
                return;
            }
        }
    }

    /// The scavenger's look: if nobody put into or took from the depot
    /// since the previous look, empties it into `release` as
    /// [`drain`](Self::drain) does, but without ever waiting for the lock
    /// (a role holding it is using the depot: the next look will do).
    pub(crate) fn drain_if_unused(&self, mut release: impl FnMut(u32)) {
        if self.touched.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut buf = [0u32; Self::BATCH];
        loop {
            let n = match self.slots.try_lock() {
                Ok(mut d) => self.take_locked(&mut d, &mut buf),
                Err(std::sync::TryLockError::Poisoned(e)) => self.take_locked(&mut e.into_inner(), &mut buf),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            for &s in &buf[..n] {
                release(s);
            }
            if n < buf.len() {
                // Our own takes marked it used: the next look starts afresh.
                self.touched.store(false, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_takes_what_fits_and_take_returns_the_newest() {
        let d = SlotDepot::new();
        let many: Vec<u32> = (0..SlotDepot::CAPACITY as u32 + 5).collect();
        assert_eq!(d.put(&many), SlotDepot::CAPACITY, "the rest goes back to the pool");
        let mut out = [0u32; 3];
        assert_eq!(d.take(&mut out), 3);
        let top = SlotDepot::CAPACITY as u32;
        assert_eq!(out, [top - 3, top - 2, top - 1]);
        let mut released = Vec::new();
        d.drain(|s| released.push(s));
        assert_eq!(released.len(), SlotDepot::CAPACITY - 3);
        assert_eq!(d.take(&mut out), 0, "drained");
        assert_eq!(d.put(&[7]), 1);
    }

    /// The scavenger's look empties a depot nobody put into or took from
    /// since its previous look, and keeps one in use; the length hint
    /// follows every change.
    #[test]
    fn the_scavengers_look_empties_only_an_unused_depot() {
        let d = SlotDepot::new();
        let mut released = Vec::new();
        assert_eq!(d.put(&[1, 2, 3]), 3);
        assert_eq!(d.len(), 3);
        d.drain_if_unused(|s| released.push(s));
        assert!(released.is_empty(), "a put is a use");
        let mut out = [0u32; 1];
        assert_eq!(d.take(&mut out), 1);
        assert_eq!(d.len(), 2);
        d.drain_if_unused(|s| released.push(s));
        assert!(released.is_empty(), "a take is a use");
        d.drain_if_unused(|s| released.push(s));
        released.sort_unstable();
        assert_eq!((released, d.len()), (vec![1, 2], 0), "unused since the last look: emptied");
        assert_eq!(d.put(&[7]), 1);
        let mut again = Vec::new();
        d.drain_if_unused(|s| again.push(s));
        assert!(again.is_empty(), "the emptying look does not count as a use, the put does");
        let held = d.slots.lock().unwrap();
        d.drain_if_unused(|s| again.push(s));
        drop(held);
        assert!(again.is_empty() && d.len() == 1, "a held lock is not waited for");
    }

    /// A full depot refuses more without losing any, and drains in batches.
    #[test]
    fn a_full_depot_refuses_and_drains_whole() {
        let d = SlotDepot::new();
        let all: Vec<u32> = (0..SlotDepot::CAPACITY as u32).collect();
        assert_eq!(d.put(&all), SlotDepot::CAPACITY);
        assert_eq!(d.put(&[9_999]), 0, "full");
        let mut released = Vec::new();
        d.drain(|s| released.push(s));
        released.sort_unstable();
        assert_eq!(released, all);
        assert_eq!(d.len(), 0);
    }

    /// A full cache spills its oldest half: slots the depot accepts go there
    /// while it has room, the rest back to the pool; an empty cache refills
    /// from the depot.
    #[test]
    fn a_full_cache_spills_its_oldest_half_and_an_empty_one_refills() {
        let d = SlotDepot::new();
        // Room for 5 only.
        let filler: Vec<u32> = (1000..1000 + SlotDepot::CAPACITY as u32 - 5).collect();
        assert_eq!(d.put(&filler), filler.len());
        let c = SlotCache::new();
        for s in 0..SlotCache::CAPACITY as u32 {
            // SAFETY: this test is the cache's only user.
            assert!(unsafe { c.push(s) });
        }
        // SAFETY: as above.
        assert!(!unsafe { c.push(99) }, "full");
        let mut released = Vec::new();
        // Multiples of 4 stand for slots of another stack class.
        // SAFETY: as above.
        unsafe { c.spill(&d, |s| s % 4 != 0, |s| released.push(s)) };
        // Of the oldest 16: 0, 4, 8, 12 are of another class; 1, 2, 3, 5, 6
        // fit in the depot; 7, 9, 10, 11, 13, 14, 15 do not.
        assert_eq!(released, [0, 4, 8, 12, 7, 9, 10, 11, 13, 14, 15]);
        let mut left = Vec::new();
        // SAFETY: as above.
        while let Some(s) = unsafe { c.pop() } {
            left.push(s);
        }
        assert_eq!(left, (SlotDepot::BATCH as u32..SlotCache::CAPACITY as u32).rev().collect::<Vec<_>>());
        // SAFETY: as above.
        assert!(unsafe { c.refill(&d) });
        let mut got = Vec::new();
        // SAFETY: as above.
        while let Some(s) = unsafe { c.pop() } {
            got.push(s);
        }
        assert_eq!(got.len(), SlotDepot::BATCH, "one batch");
        assert_eq!(&got[..5], [6, 5, 3, 2, 1], "the newest first");
    }
}
