//! CPU-time fairness between a role's hogs and the rest of its work.
//!
//! A GVThread that used up its time slice (frozen by the signal, or yielding
//! at a safepoint on request) waits on its role's `frozen` / `preempted`
//! queue while fresh and woken work runs first. It is due again once the
//! role gave the others their share of time: as much as it just had **for
//! each GVThread that shared the role meanwhile**, counting at most
//! [`MAX_SHARERS`] of them. Shares are per GVThread, as with Go's goroutines
//! and Linux threads: a message-passing pair (two GVThreads taking turns)
//! beside one hog gets two thirds of the worker, not half. The cap keeps a
//! hog's share at one quarter or more however many GVThreads keep waking
//! (fairness within 2× of an even split), and bounds how long it waits: at
//! most `MAX_SHARERS` times its slice.
//!
//! Only the machine holding the role writes this state (at its switches,
//! and in its own preemption handler), so relaxed atomics suffice; a role
//! changes hands with release/acquire synchronisation. Every method is
//! async-signal-safe.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How many distinct GVThreads sharing a role a hog waits for, at most.
pub(crate) const MAX_SHARERS: usize = 3;

/// No slot recorded.
const NONE: u32 = u32::MAX;

/// A role's fairness bookkeeping (see the module docs).
pub(crate) struct FairShare {
    /// When the last hog was preempted (coarse clock, ns).
    hog_at: AtomicU64,
    /// How long it ran before that (ns, at most a time slice).
    hog_ran: AtomicU64,
    /// Distinct slots run on the role since then (the first
    /// [`MAX_SHARERS`]).
    sharers: [AtomicU32; MAX_SHARERS],
    /// How many of `sharers` are set.
    count: AtomicU32,
}

impl FairShare {
    pub(crate) fn new() -> FairShare {
        FairShare {
            hog_at: AtomicU64::new(0),
            hog_ran: AtomicU64::new(0),
            sharers: [const { AtomicU32::new(NONE) }; MAX_SHARERS],
            // Nothing to count before the first hog: `note_running` costs a
            // load and a compare until then.
            count: AtomicU32::new(MAX_SHARERS as u32),
        }
    }

    /// The GVThread running since `since` (coarse ns) used up its time slice
    /// at `now`: it ran `now - since`, at most `slice` (it may have run
    /// longer only while nobody else waited). Starts counting sharers anew.
    pub(crate) fn note_hog(&self, now: u64, since: u64, slice: u64) {
        let ran = now.saturating_sub(since).min(slice);
        self.hog_ran.store(ran, Ordering::Relaxed);
        self.hog_at.store(now, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
    }

    /// `slot` is about to run on the role: one more sharer if it is new.
    /// A load and a compare once [`MAX_SHARERS`] are counted.
    #[inline]
    pub(crate) fn note_running(&self, slot: u32) {
        let n = self.count.load(Ordering::Relaxed) as usize;
        if n >= MAX_SHARERS || self.sharers[..n].iter().any(|s| s.load(Ordering::Relaxed) == slot) {
            return;
        }
        self.sharers[n].store(slot, Ordering::Relaxed);
        self.count.store(n as u32 + 1, Ordering::Relaxed);
    }

    /// When the last hog is due again (coarse ns): once every sharer (one
    /// at least, at most [`MAX_SHARERS`]) had as much time as it did.
    #[inline]
    pub(crate) fn hog_due(&self) -> u64 {
        let sharers = u64::from(self.count.load(Ordering::Relaxed).max(1));
        let ran = self.hog_ran.load(Ordering::Relaxed);
        self.hog_at.load(Ordering::Relaxed).saturating_add(ran.saturating_mul(sharers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_hog_waits_its_own_time_when_one_gvthread_shares_the_role() {
        let f = FairShare::new();
        f.note_hog(100 * MS, 90 * MS, 10 * MS);
        assert_eq!(f.hog_due(), 110 * MS, "before anyone ran");
        f.note_running(7);
        f.note_running(7);
        assert_eq!(f.hog_due(), 110 * MS);
    }

    #[test]
    fn a_pair_gets_a_share_for_each_of_its_gvthreads() {
        let f = FairShare::new();
        f.note_hog(100 * MS, 96 * MS, 10 * MS);
        for _ in 0..1000 {
            f.note_running(3);
            f.note_running(4);
        }
        assert_eq!(f.hog_due(), 108 * MS, "4 ms for each of the two");
    }

    #[test]
    fn the_wait_is_capped_however_many_share_the_role() {
        let f = FairShare::new();
        f.note_hog(100 * MS, 90 * MS, 10 * MS);
        for s in 0..100_000 {
            f.note_running(s);
        }
        assert_eq!(f.hog_due(), 100 * MS + MAX_SHARERS as u64 * 10 * MS);
    }

    #[test]
    fn the_hog_counts_at_most_a_slice_and_a_new_hog_starts_a_new_count() {
        let f = FairShare::new();
        f.note_hog(100 * MS, 0, 10 * MS);
        f.note_running(1);
        f.note_running(2);
        assert_eq!(f.hog_due(), 120 * MS, "ran 100 ms, counted as the 10 ms slice");
        f.note_hog(200 * MS, 199 * MS, 10 * MS);
        assert_eq!(f.hog_due(), 201 * MS, "sharers of the earlier hog are forgotten");
    }
}
