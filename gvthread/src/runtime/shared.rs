//! State shared by a runtime's threads, handles and wakers.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::config::SchedulerConfig;
use crate::memory::SlotPool;
use crate::sched::idle::Idle;
use crate::sched::inject::GlobalQueues;
use crate::sched::worker::Worker;
use crate::sync::cancel::CancellationToken;
use crate::task::header::{HEADER_SIZE, Header};
use crate::task::join::JoinCore;
use crate::timer::Timers;

/// Accepting spawns.
const RUNNING: u8 = 0;
/// Shutting down: no new spawns, waiting for live GVThreads.
const SHUTTING_DOWN: u8 = 1;
/// Stopped: workers leave their loops, nothing more runs.
const STOPPED: u8 = 2;

/// Everything a runtime's threads share.
pub(crate) struct Shared {
    pub(crate) config: SchedulerConfig,
    pub(crate) slots: SlotPool,
    /// Ordinary roles first (`..num_normal_workers`), then low-priority ones.
    pub(crate) workers: Box<[Worker]>,
    pub(crate) num_normal_workers: usize,
    pub(crate) num_low_workers: usize,
    pub(crate) global: GlobalQueues,
    pub(crate) idle: Idle,
    pub(crate) idle_low: Idle,
    pub(crate) timers: Timers,
    pub(crate) root_token: CancellationToken,
    /// Live GVThreads (spawned and not yet exited).
    pub(crate) live: AtomicUsize,
    pub(crate) max_gvthreads: usize,
    lifecycle: AtomicU8,
    done_lock: Mutex<()>,
    done_cv: Condvar,
}

impl Shared {
    pub(crate) fn new(config: SchedulerConfig, slots: SlotPool) -> Shared {
        let normal = config.resolved_workers();
        let low = config.num_low_priority_workers;
        let workers = (0..normal + low).map(|i| Worker::new(i, i >= normal)).collect();
        Shared {
            max_gvthreads: config.max_gvthreads,
            config,
            slots,
            workers,
            num_normal_workers: normal,
            num_low_workers: low,
            global: GlobalQueues::new(),
            idle: Idle::new(normal),
            idle_low: Idle::new(low),
            timers: Timers::new(),
            root_token: CancellationToken::new(),
            live: AtomicUsize::new(0),
            lifecycle: AtomicU8::new(RUNNING),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
        }
    }

    /// The header of `slot` (at the top of the slot).
    #[inline]
    pub(crate) fn header(&self, slot: u32) -> *mut Header {
        self.slots.top(slot).wrapping_sub(HEADER_SIZE).cast()
    }

    /// Whether new spawns are refused.
    #[inline]
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) >= SHUTTING_DOWN
    }

    /// Whether workers must stop.
    #[inline]
    pub(crate) fn is_stopped(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) == STOPPED
    }

    /// Bookkeeping after a GVThread exited.
    pub(crate) fn gvthread_exited(&self) {
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 && self.is_shutting_down() {
            let _g = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.done_cv.notify_all();
        }
    }

    /// Stops accepting spawns and cancels every GVThread's token.
    pub(crate) fn begin_shutdown(&self) {
        let _ = self.lifecycle.compare_exchange(RUNNING, SHUTTING_DOWN, Ordering::SeqCst, Ordering::SeqCst);
        self.root_token.cancel();
        // Wake every GVThread so that parked ones unwind out of `park` (see
        // `sched::park`). Running ones get NOTIFIED: one that checked the flag
        // just before we set it returns from its next park at once and sees it.
        for slot in 0..self.slots.used() {
            let word = self.slots.state(slot).load(Ordering::SeqCst);
            if crate::task::state::kind(word) != crate::task::state::FREE {
                self.wake(slot, crate::task::state::generation(word));
            }
        }
    }

    /// Waits until no GVThread is alive or `deadline`; returns the live count.
    pub(crate) fn wait_idle(&self, deadline: std::time::Instant) -> usize {
        let mut g = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let live = self.live.load(Ordering::Acquire);
            let now = std::time::Instant::now();
            if live == 0 || now >= deadline {
                return live;
            }
            g = self.done_cv.wait_timeout(g, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Stops the workers and the timer thread.
    pub(crate) fn stop(&self) {
        self.lifecycle.store(STOPPED, Ordering::Release);
        self.idle.notify_all(&self.workers);
        self.idle_low.notify_all(&self.workers);
        for w in self.workers.iter() {
            w.parker.unpark();
        }
        let _q = self.timers.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.timers.cv.notify_all();
    }

    /// Completes the join of every GVThread still alive with
    /// `JoinError::Cancelled`; their stacks are left as they are (leaked).
    pub(crate) fn abandon_all(&self) {
        self.slots.leak_on_drop();
        for slot in 0..self.slots.used() {
            let p = self.slots.completion(slot).swap(std::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: a non-null completion pointer is an owned reference
                // to a live join state (see `task::join`); swapping it out made
                // it ours, so it is consumed exactly once.
                unsafe { JoinCore::abandon(p.cast()) };
            }
        }
    }
}
