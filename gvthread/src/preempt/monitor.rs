//! The preemption monitor, run by the timer thread every `timer_interval`
//! while any worker runs GVThreads.
//!
//! For each worker role it watches the activity counter (bumped at every
//! switch, and by a yield that found nothing else to run; not by safepoints,
//! which only poll the request). Unchanged for `time_slice`: the role's
//! cooperative preemption flag is set (the next `safepoint!()` yields) and a
//! spare thread is requested for the role ahead of need. Still unchanged
//! after `time_slice + grace_period`, forced preemption on, and something
//! else waiting for the role: the OS thread holding the role gets SIGURG (see
//! `signal`), again at every tick while the stall lasts (the handler declines
//! at unsafe points, and the next tick retries). This also rescues workers
//! stuck in blocking calls (`std::thread::sleep`, a contended
//! `std::sync::Mutex`, FFI): the handler freezes the GVThread in its call and
//! the role's other GVThreads go on.
//!
//! Wake-up preemption: when a GVThread was woken for a role (`woken`) and the
//! role's running GVThread has run for `wakeup_granularity` (1 ms by
//! default), the monitor asks it to yield and forces it at once, instead of
//! waiting for the end of its time slice (a woken GVThread that then keeps
//! running is preempted like any other at the end of its own slice). The
//! timer thread also checks right after it fired timers (`after_wakes`), so
//! a sleeper does not wait for the next tick, and again when the running
//! GVThread reaches its granularity if it had switched in too recently, or
//! after a declined freeze (with a back-off). A wake from another role or
//! from outside the runtime preempts a GVThread that has had its granularity
//! at once, from the waker (`preempt_for_wake`); a wake of a more urgent
//! priority preempts at once in any case (`preempt_now`).
//!
//! Every freeze asked for on these wall-clock grounds also needs evidence
//! from the role's thread's CPU clock that the GVThread runs (see
//! `cpu_time`): without it the signal only frees the role from a blocking
//! system call, and a GVThread whose thread Linux kept waiting keeps its
//! thread.
//!
//! Lock holders first: while a role has frozen GVThreads, a holder that has
//! not switched for two ticks gets a `PREEMPT_BLOCKED` signal, which freezes
//! it only if it is blocked in the kernel, and then hands the role to the
//! oldest frozen GVThread (likely the owner of the lock it waits for).
//!
//! The monitor runs on the timer thread outside every lock, and neither
//! allocates nor starts threads (see `spares`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::spares::request_spare;
use super::{cpu_time, preempt_for_wake};
use crate::runtime::shared::Shared;
use crate::sched::machine::{Machine, PREEMPT_BLOCKED, PREEMPT_HOG};
use crate::sched::worker::Worker;

/// What the monitor remembers about one worker role.
#[derive(Clone, Copy)]
struct Watch {
    /// `runnext` at the previous tick: still the same one now means it
    /// waited a whole tick while its worker ran something else.
    runnext: u32,
    activity: u64,
    since: Instant,
    flagged: bool,
}

/// First delay before `after_wakes` looks again at a role whose woken work
/// still waits although the role was asked to switch.
const WAKE_RETRY_FIRST: Duration = Duration::from_micros(100);

/// Longest delay between two such looks (or one `timer_interval`, if
/// shorter): at most one signal per role per millisecond, as the default
/// ticks would send.
const WAKE_RETRY_MAX: Duration = Duration::from_millis(1);

/// Back-off of `after_wakes` retries for one role.
#[derive(Clone, Copy)]
struct WakeRetry {
    /// The role's activity counter when the delay was last chosen: a switch
    /// since then starts over from [`WAKE_RETRY_FIRST`].
    activity: u64,
    delay_ns: u64,
}

impl WakeRetry {
    /// The delay before the next look at a role whose activity is
    /// `activity`: doubled while it stays the same, at most `cap_ns`.
    fn next(&mut self, activity: u64, cap_ns: u64) -> u64 {
        let first = WAKE_RETRY_FIRST.as_nanos() as u64;
        self.delay_ns = if activity == self.activity && self.delay_ns != 0 {
            self.delay_ns.saturating_mul(2).min(cap_ns)
        } else {
            first.min(cap_ns)
        };
        self.activity = activity;
        self.delay_ns
    }
}

/// Monitor state, owned by the timer thread.
pub(crate) struct Monitor {
    watches: Vec<Watch>,
    retries: Vec<WakeRetry>,
}

impl Monitor {
    pub(crate) fn new(shared: &Shared) -> Monitor {
        let now = Instant::now();
        Monitor {
            watches: vec![Watch { runnext: u32::MAX, activity: 0, since: now, flagged: false }; shared.workers.len()],
            retries: vec![WakeRetry { activity: 0, delay_ns: 0 }; shared.workers.len()],
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
            // kept running another one) becomes stealable: to the global
            // queue. Not with one ordinary worker: nobody else could take it,
            // and the move would only reorder that worker's queues.
            let runnext = w.runnext.peek();
            if runnext != u32::MAX
                && runnext == watch.runnext
                && shared.num_normal_workers > 1
                && shared.evict_runnext(w, runnext)
            {
                watch.runnext = u32::MAX;
            } else {
                watch.runnext = runnext;
            }
            let activity = w.activity.load(Ordering::Relaxed);
            if !w.busy.load(Ordering::Relaxed) || activity != watch.activity {
                *watch = Watch { runnext: watch.runnext, activity, since: now, flagged: false };
                if w.busy.load(Ordering::Relaxed) {
                    any_busy = true;
                    // First look at the GVThread now running (see `cpu_time`).
                    let holder = w.holder.load(Ordering::Acquire);
                    // SAFETY: machines stay alive while registered in
                    // `shared`, which outlives this timer thread's use.
                    let holder = unsafe { holder.as_ref() };
                    if cfg.enable_forced_preempt
                        && let Some(holder) = holder
                    {
                        w.cpu_watch.look(holder, activity);
                    }
                }
                continue;
            }
            any_busy = true;
            let stalled = now.duration_since(watch.since);
            // Wake-up preemption: something woke for this role while the
            // running GVThread has had its minimum share.
            let woken = w.has_woken() && (stalled >= cfg.wakeup_granularity || w.urgent_wake.load(Ordering::Relaxed));
            if woken && !w.preempt.load(Ordering::Relaxed) {
                w.preempt.store(true, Ordering::Release);
                shared.metrics.wakeup_preemptions.fetch_add(1, Ordering::Relaxed);
            }
            if stalled >= cfg.time_slice && !watch.flagged {
                watch.flagged = true;
                w.preempt.store(true, Ordering::Release);
                shared.metrics.preempt_requests.fetch_add(1, Ordering::Relaxed);
                if cfg.enable_forced_preempt {
                    request_spare(shared, w, false);
                }
            }
            if !cfg.enable_forced_preempt {
                continue;
            }
            let due = cfg.time_slice.saturating_add(cfg.grace_period);
            // Only when someone else could use the worker: freezing a
            // GVThread that would be picked right back is pure cost.
            let hog = (woken || stalled >= due) && shared.has_work_for(w);
            if !hog && (w.frozen.is_empty() || stalled < cfg.timer_interval.saturating_mul(2)) {
                continue;
            }
            let holder = w.holder.load(Ordering::Acquire);
            // SAFETY: machines stay alive while registered in `shared`,
            // which outlives this timer thread's use.
            let Some(holder) = (unsafe { holder.as_ref() }) else { continue };
            // A hog by wall-clock time must be one by CPU time too (see
            // `cpu_time`); otherwise free the role only from a system call.
            let request = if !hog {
                PREEMPT_BLOCKED
            } else if hog_on_cpu(shared, w, holder, activity, due) {
                PREEMPT_HOG
            } else {
                shared.metrics.not_running.fetch_add(1, Ordering::Relaxed);
                PREEMPT_BLOCKED
            };
            holder.request_preemption(request, activity);
            shared.metrics.signals_sent.fetch_add(1, Ordering::Relaxed);
        }
        any_busy
    }

    /// Wake-up preemption right after the timer thread woke GVThreads (their
    /// timers fired), instead of at the next tick: a role whose running
    /// GVThread has run for at least `wakeup_granularity` (since its switch,
    /// by the coarse clock) is asked to switch now.
    ///
    /// Returns when to look again, if a role's woken work still waits: its
    /// running GVThread switched in too recently, or the role is between
    /// machines (a hand-off): when it reaches its granularity; the freeze
    /// has not taken effect yet (the handler declined at an unsafe point, as
    /// Go retries): from [`WAKE_RETRY_FIRST`], backing off to
    /// [`WAKE_RETRY_MAX`] while the role's activity does not change, so a
    /// role that cannot be preempted costs no more signals than the default
    /// ticks would.
    pub(crate) fn after_wakes(&mut self, shared: &Arc<Shared>) -> Option<Duration> {
        let cfg = &shared.config;
        let now = shared.coarse_now();
        let granularity = cfg.wakeup_granularity.as_nanos().min(u64::MAX as u128) as u64;
        let cap = cfg.timer_interval.min(WAKE_RETRY_MAX).as_nanos().max(1) as u64;
        let mut recheck: Option<u64> = None;
        let mut look_again = |at: u64| recheck = Some(recheck.map_or(at, |r| r.min(at)));
        for (w, retry) in shared.workers.iter().zip(self.retries.iter_mut()) {
            if !w.has_woken() {
                continue;
            }
            let activity = w.activity.load(Ordering::Relaxed);
            if !w.busy.load(Ordering::Relaxed) {
                // Between machines, or about to be woken for the work. The
                // GVThread that runs next gets its granularity anyway, so
                // look again then (waking this thread sooner only makes it
                // wait for a CPU when it matters: see `util::slice`).
                if shared.has_work_for(w) {
                    look_again(granularity.max(1));
                }
                continue;
            }
            let ran = now.saturating_sub(w.since_ns.load(Ordering::Relaxed));
            if ran < granularity {
                look_again(granularity - ran);
                continue;
            }
            preempt_for_wake(shared, w);
            if cfg.enable_forced_preempt && shared.has_work_for(w) {
                look_again(retry.next(activity, cap));
            }
        }
        recheck.map(Duration::from_nanos)
    }

    /// How long the timer thread may sleep before the next tick.
    pub(crate) fn interval(shared: &Shared) -> Duration {
        shared.config.timer_interval
    }
}

/// Whether the GVThread running on role `w` (held by `holder`), a hog by
/// wall-clock time, is known to be running (see `cpu_time`) for the
/// threshold it reached: `due` (its time slice and grace period), or the
/// wake-up granularity if woken work waits; at once for urgent work.
fn hog_on_cpu(shared: &Shared, w: &Worker, holder: &Machine, activity: u64, due: Duration) -> bool {
    if w.urgent_wake.load(Ordering::Relaxed) {
        return true;
    }
    let Some(used) = cpu_time::used_since_look(w, holder, activity) else { return false };
    let due = due.as_nanos().min(u128::from(u64::MAX)) as u64;
    let needed = if w.has_woken() { shared.wakeup_granularity_ns().min(due) } else { due };
    cpu_time::running(used, needed) == 0
}
