//! The preemption monitor, run by the timer thread every `timer_interval`
//! while any worker runs GVThreads.
//!
//! For each worker role it watches the activity counter (bumped at every
//! switch, and by a yield that found nothing else to run; not by safepoints,
//! which only poll the request). Unchanged for `time_slice`: the role's cooperative
//! preemption flag is set (the next `safepoint!()` yields). Still unchanged
//! after `time_slice + grace_period` and forced preemption is on: the OS
//! thread holding the role gets SIGURG (see `signal`), again every time slice
//! while the stall lasts. This also rescues workers stuck in blocking calls
//! (`std::thread::sleep`, a contended `std::sync::Mutex`, FFI): the handler
//! runs, hands the role to a spare thread, and the other GVThreads go on.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::signal::PREEMPT_SIGNAL;
use crate::runtime::shared::Shared;

/// What the monitor remembers about one worker role.
#[derive(Clone, Copy)]
struct Watch {
    /// `runnext` at the previous tick: still the same one now means it
    /// waited a whole tick while its worker ran something else.
    runnext: u32,
    activity: u64,
    since: Instant,
    flagged: bool,
    last_signal: Option<Instant>,
}

/// Monitor state, owned by the timer thread.
pub(crate) struct Monitor {
    watches: Vec<Watch>,
}

impl Monitor {
    pub(crate) fn new(shared: &Shared) -> Monitor {
        let now = Instant::now();
        Monitor {
            watches: vec![
                Watch { runnext: u32::MAX, activity: 0, since: now, flagged: false, last_signal: None };
                shared.workers.len()
            ],
        }
    }

    /// One pass over the roles. Returns whether any role is busy (the monitor
    /// must keep ticking).
    pub(crate) fn tick(&mut self, shared: &Arc<Shared>) -> bool {
        let now = Instant::now();
        let cfg = &shared.config;
        let mut any_busy = false;
        for (w, watch) in shared.workers.iter().zip(self.watches.iter_mut()) {
            // A GVThread waiting in `runnext` for a whole tick (its worker
            // kept running another one) becomes stealable: to the global queue.
            let runnext = w.runnext.load(Ordering::Relaxed);
            if runnext != u32::MAX && runnext == watch.runnext && shared.evict_runnext(w, runnext) {
                watch.runnext = u32::MAX;
            } else {
                watch.runnext = runnext;
            }
            let activity = w.activity.load(Ordering::Relaxed);
            if !w.busy.load(Ordering::Relaxed) || activity != watch.activity {
                *watch = Watch { runnext: watch.runnext, activity, since: now, flagged: false, last_signal: None };
                any_busy |= w.busy.load(Ordering::Relaxed);
                continue;
            }
            any_busy = true;
            let stalled = now.duration_since(watch.since);
            if stalled >= cfg.time_slice && !watch.flagged {
                watch.flagged = true;
                w.preempt.store(true, Ordering::Release);
                shared.metrics.preempt_requests.fetch_add(1, Ordering::Relaxed);
            }
            if cfg.enable_forced_preempt
                && stalled >= cfg.time_slice + cfg.grace_period
                && watch.last_signal.is_none_or(|t| now.duration_since(t) >= cfg.time_slice)
                // Only when someone else could use the worker: freezing a
                // GVThread that would be picked right back is pure cost.
                && shared.any_runnable()
            {
                let holder = w.holder.load(Ordering::Acquire);
                if !holder.is_null() {
                    watch.last_signal = Some(now);
                    // SAFETY: machines stay alive while registered in
                    // `shared`, which outlives this timer thread's use.
                    unsafe {
                        (*holder).preempt_request.store(true, Ordering::Release);
                        libc::pthread_kill((*holder).pthread, PREEMPT_SIGNAL);
                    }
                    shared.metrics.signals_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if cfg.enable_forced_preempt && any_busy {
            shared.ensure_spare();
        }
        any_busy
    }

    /// How long the timer thread may sleep before the next tick.
    pub(crate) fn interval(shared: &Shared) -> Duration {
        shared.config.timer_interval
    }
}
