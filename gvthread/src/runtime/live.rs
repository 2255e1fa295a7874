//! Counting live GVThreads without a shared cache line per spawn.
//!
//! The count serves three purposes: the `max_gvthreads` limit, shutdown
//! (which waits for it to reach zero before it unmaps stacks), and metrics.
//! A single counter that every spawn and every exit updates is one cache
//! line all workers write: with two workers spawning and joining, a quarter
//! of the time went to that line moving between CPUs.
//!
//! So the global counter, `Shared::live`, counts *reservations*: live
//! GVThreads plus spawn credits that roles hold (`Worker::spawn_credits`).
//! A spawn on a worker takes one of its role's credits (a compare-exchange
//! on the role's own line) and reserves [`CREDIT_BATCH`] more from the
//! global counter when it has none; an exit gives its credit back to its
//! role, which returns a batch to the global counter once it holds more
//! than two. Spawns from outside the runtime reserve one at a time.
//!
//! * **Limit.** Reservations never exceed `max_gvthreads`. When a batch
//!   does not fit, a spawn reserves one; when even that fails, it takes back
//!   every role's unused credits and tries once more, so the limit is
//!   reached only when that many GVThreads are really alive (up to the
//!   spawns racing with it).
//! * **Shutdown.** The flag is set first (SeqCst), then every role's credits
//!   are taken back. A spawn or exit that adds credits checks the flag
//!   afterwards (SeqCst) and takes its role's credits back itself when set.
//!   Dekker style, either the shutdown's take or the party's check sees the
//!   other, so no credit stays cached after shutdown and the count reaches
//!   zero once the last GVThread is gone.
//! * **Metrics.** [`Shared::live_count`] is reservations minus credits: exact
//!   whenever no spawn or exit runs at the same time, off by at most a
//!   batch while one does.

use std::sync::atomic::Ordering;

use super::error::SpawnError;
use super::shared::Shared;
use crate::sched::worker::Worker;

/// Credits a role reserves at once.
pub(crate) const CREDIT_BATCH: usize = 32;

impl Shared {
    /// GVThreads alive now (see the module docs for its precision).
    pub(crate) fn live_count(&self) -> usize {
        let credits: usize = self.workers.iter().map(|w| w.spawn_credits.load(Ordering::SeqCst)).sum();
        self.live.load(Ordering::SeqCst).saturating_sub(credits)
    }

    /// Counts a GVThread about to be spawned, by the role `w` if the spawner
    /// holds one of this runtime. Fails at the limit or once shutdown began.
    pub(crate) fn count_spawn(&self, w: Option<&Worker>) -> Result<(), SpawnError> {
        let counted = match w {
            Some(w) => self.take_credit(w),
            None => self.reserve(1),
        };
        if !counted {
            return Err(SpawnError::AtCapacity { max: self.max_gvthreads });
        }
        // After the count (SeqCst on both sides, see the module docs).
        if self.is_shutting_down() {
            if let Some(w) = w {
                self.reclaim_credits(w);
            }
            self.uncount(1);
            return Err(SpawnError::ShutDown);
        }
        Ok(())
    }

    /// Counts out a GVThread counted by [`count_spawn`](Self::count_spawn)
    /// whose spawn failed.
    pub(crate) fn uncount_spawn(&self) {
        self.uncount(1);
    }

    /// Counts out a GVThread that exited on the role `w`: its credit goes
    /// back to the role.
    pub(crate) fn count_exit(&self, w: &Worker) {
        let held = w.spawn_credits.fetch_add(1, Ordering::SeqCst) + 1;
        if self.is_shutting_down() {
            self.reclaim_credits(w);
        } else if held > 2 * CREDIT_BATCH
            && w.spawn_credits.compare_exchange(held, held - CREDIT_BATCH, Ordering::SeqCst, Ordering::Relaxed).is_ok()
        {
            self.uncount(CREDIT_BATCH);
        }
    }

    /// Takes back every role's unused credits (shutdown, and a spawn at the
    /// limit).
    pub(crate) fn reclaim_all_credits(&self) {
        for w in self.workers.iter() {
            self.reclaim_credits(w);
        }
    }

    /// One credit of `w` for a spawn, reserving a batch if it has none.
    fn take_credit(&self, w: &Worker) -> bool {
        let held = w.spawn_credits.load(Ordering::Relaxed);
        // Only the role's holder takes credits; others only take them all
        // back, so a failed exchange means they are gone.
        if held > 0 && w.spawn_credits.compare_exchange(held, held - 1, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
            return true;
        }
        if self.reserve(CREDIT_BATCH) {
            w.spawn_credits.fetch_add(CREDIT_BATCH - 1, Ordering::SeqCst);
            return true;
        }
        if self.reserve(1) {
            return true;
        }
        self.reclaim_all_credits();
        self.reserve(1)
    }

    /// Reserves `n` if that stays within the limit.
    fn reserve(&self, n: usize) -> bool {
        let before = self.live.fetch_add(n, Ordering::SeqCst);
        if before.saturating_add(n) <= self.max_gvthreads {
            return true;
        }
        self.uncount(n);
        false
    }

    /// Returns the credits `w` holds to the global count.
    fn reclaim_credits(&self, w: &Worker) {
        let held = w.spawn_credits.swap(0, Ordering::SeqCst);
        if held > 0 {
            self.uncount(held);
        }
    }

    /// Takes `n` reservations back; during shutdown, the one that leaves no
    /// GVThread alive wakes the thread waiting for that (`wait_idle`).
    fn uncount(&self, n: usize) {
        self.live.fetch_sub(n, Ordering::SeqCst);
        if self.is_shutting_down() && self.live_count() == 0 {
            self.notify_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::SchedulerConfig;
    use crate::{Runtime, SpawnError};

    fn shared(rt: &Runtime) -> &Shared {
        rt.shared_for_tests()
    }

    #[test]
    fn credits_are_reserved_in_batches_and_given_back() {
        let rt = Runtime::new(SchedulerConfig::default().num_workers(1));
        let sh = shared(&rt);
        let w = &sh.workers[0];
        let base = sh.live_count();
        sh.count_spawn(Some(w)).unwrap();
        assert_eq!(sh.live.load(Ordering::SeqCst), base + CREDIT_BATCH, "a batch reserved");
        assert_eq!(w.spawn_credits.load(Ordering::SeqCst), CREDIT_BATCH - 1);
        assert_eq!(sh.live_count(), base + 1);
        for _ in 1..3 * CREDIT_BATCH {
            sh.count_spawn(Some(w)).unwrap();
        }
        assert_eq!(sh.live_count(), base + 3 * CREDIT_BATCH);
        for _ in 0..3 * CREDIT_BATCH {
            sh.count_exit(w);
        }
        assert!(w.spawn_credits.load(Ordering::SeqCst) <= 2 * CREDIT_BATCH, "surplus credits go back");
        assert_eq!(sh.live_count(), base);
    }

    #[test]
    fn the_limit_takes_back_other_roles_credits_before_it_refuses() {
        let rt = Runtime::new(SchedulerConfig::default().num_workers(2).max_gvthreads(40));
        let sh = shared(&rt);
        let (a, b) = (&sh.workers[0], &sh.workers[1]);
        let base = sh.live.load(Ordering::SeqCst);
        sh.count_spawn(Some(a)).unwrap();
        // `a` now holds the rest of a batch: `b` still reaches the limit.
        let mut spawned = 1;
        while sh.count_spawn(Some(b)).is_ok() {
            spawned += 1;
            assert!(spawned <= 40, "more than max_gvthreads counted");
        }
        assert_eq!(spawned + base, 40, "refused only at the limit");
        assert_eq!(a.spawn_credits.load(Ordering::SeqCst), 0, "a's credits were taken back");
        match sh.count_spawn(Some(a)) {
            Err(SpawnError::AtCapacity { max: 40 }) => {}
            other => panic!("expected AtCapacity, got {other:?}"),
        }
        for _ in 0..spawned {
            sh.count_exit(b);
        }
        assert_eq!(sh.live_count(), base);
    }
}
