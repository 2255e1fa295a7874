//! Sleeping and waking idle workers.
//!
//! # Protocol
//!
//! A worker that finds no work first becomes *searching* (stealing), if
//! fewer than half of the workers already search. A searcher that still finds
//! nothing announces itself as a *sleeper* (pushes itself on `sleepers`,
//! increments `num_sleeping`), issues a `SeqCst` fence, looks at every queue
//! once more, and only then blocks on its role's parker.
//!
//! Whoever makes work available pushes it, issues a `SeqCst` fence, and then
//! calls [`Idle::notify_one`], which wakes a sleeper only if nobody searches.
//!
//! No lost work: by the two fences, either the sleeper's final look sees the
//! new work, or the notifier sees the sleeper (or a searcher, which will in
//! turn either find the work or go through the same final look before
//! sleeping). A worker that stops searching because it found work wakes
//! another sleeper if it was the last searcher, so a burst of work spreads
//! over the workers one wake at a time instead of waking everybody at once.
//!
//! Work bound to one role (a started GVThread, see `sched`) is announced with
//! [`Idle::wake_worker`], which wakes that role's worker if it sleeps.
//!
//! The `sleepers` lock is only taken inside runtime sections, by the
//! scheduler loop, or by threads that are not machines of this runtime, so a
//! GVThread frozen by the preemption handler never holds it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use super::worker::Worker;

/// Idle bookkeeping for one group of workers (ordinary, or low-priority).
pub(crate) struct Idle {
    num_searching: AtomicUsize,
    num_sleeping: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    group_size: usize,
}

impl Idle {
    pub(crate) fn new(group_size: usize) -> Idle {
        Idle {
            num_searching: AtomicUsize::new(0),
            num_sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(group_size)),
            group_size,
        }
    }

    /// Wakes one sleeping worker if work was just made available and nobody is
    /// searching for it.
    pub(crate) fn notify_one(&self, workers: &[Worker]) {
        fence(Ordering::SeqCst);
        if self.num_searching.load(Ordering::SeqCst) != 0 || self.num_sleeping.load(Ordering::SeqCst) == 0 {
            return;
        }
        let idx = {
            let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            let Some(idx) = s.pop() else { return };
            self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
            // The woken worker starts out searching; count it now so that
            // concurrent notifiers do not wake a second one for the same work.
            self.num_searching.fetch_add(1, Ordering::SeqCst);
            idx
        };
        workers[idx].parker.unpark();
    }

    /// Wakes worker `idx` if it sleeps: work only it may run was just made
    /// available (a GVThread bound to its role). Like `notify_one`, the
    /// caller pushed the work first; by the fences either the sleeper's final
    /// look sees it or we see the sleeper.
    pub(crate) fn wake_worker(&self, idx: usize, workers: &[Worker]) {
        fence(Ordering::SeqCst);
        if self.num_sleeping.load(Ordering::SeqCst) == 0 {
            return;
        }
        {
            let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            let Some(pos) = s.iter().position(|&i| i == idx) else { return };
            s.swap_remove(pos);
            self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
            // Woken workers start out searching (see `notify_one`).
            self.num_searching.fetch_add(1, Ordering::SeqCst);
        }
        workers[idx].parker.unpark();
    }

    /// Wakes every sleeper (shutdown).
    pub(crate) fn notify_all(&self, workers: &[Worker]) {
        let all: Vec<usize> = {
            let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
            self.num_sleeping.fetch_sub(s.len(), Ordering::SeqCst);
            self.num_searching.fetch_add(s.len(), Ordering::SeqCst);
            s.drain(..).collect()
        };
        for idx in all {
            workers[idx].parker.unpark();
        }
    }

    /// Tries to become a searcher; false when enough workers already search.
    pub(crate) fn try_start_search(&self) -> bool {
        let n = self.num_searching.load(Ordering::SeqCst);
        if 2 * n >= self.group_size.max(2) {
            return false;
        }
        self.num_searching.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A searcher found work. Returns true if it was the last searcher, in which
    /// case the caller should `notify_one` so that remaining work spreads.
    pub(crate) fn stop_search(&self) -> bool {
        self.num_searching.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// True if some worker of the group other than the caller (who is
    /// awake) has not announced itself as a sleeper.
    pub(crate) fn others_awake(&self) -> bool {
        self.num_sleeping.load(Ordering::Relaxed) + 1 < self.group_size
    }

    /// Announces `idx` as a sleeper (leaving the searching state if `searching`).
    /// The caller must look for work once more before blocking.
    pub(crate) fn prepare_sleep(&self, idx: usize, searching: bool) {
        let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        s.push(idx);
        self.num_sleeping.fetch_add(1, Ordering::SeqCst);
        if searching {
            self.num_searching.fetch_sub(1, Ordering::SeqCst);
        }
        drop(s);
        fence(Ordering::SeqCst);
    }

    /// The final look found work: withdraw the sleep announcement. Returns true
    /// if the withdrawal succeeded; false if a notifier already took `idx` off
    /// the list (then it counted us as searching and will unpark us).
    pub(crate) fn cancel_sleep(&self, idx: usize) -> bool {
        let mut s = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = s.iter().position(|&i| i == idx) {
            s.swap_remove(pos);
            self.num_sleeping.fetch_sub(1, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}
