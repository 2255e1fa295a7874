//! The timer thread's loop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::policy::TimerPolicy;
use crate::preempt::Monitor;
use crate::preempt::deadline::DeadlineArms;
use crate::runtime::shared::Shared;

/// Consecutive monitor ticks without a busy worker before the monitor sleeps
/// until a worker becomes busy again.
const QUIET_TICKS_BEFORE_IDLE: u32 = 10;

/// Runs until the runtime stops. Sends on `started` once its scheduling
/// settings are made (`Runtime::try_new` waits for that, so the metrics
/// report them from the start).
///
/// The sleep queue's lock is held only to take due timers and read the next
/// deadline: waking GVThreads, giving pages back and the preemption monitor
/// all run outside it (a GVThread adding a timer holds it inside a runtime
/// section, so it must never wait long for it).
pub(crate) fn run(shared: Arc<Shared>, started: std::sync::mpsc::Sender<()>) {
    let mut policy = TimerPolicy::start(shared.config.realtime_timer_thread);
    shared.realtime_timer.store(policy.realtime(), Ordering::Relaxed);
    crate::util::slice::exact_timers();
    // The receiver may be gone (the runtime failed to start): nothing to tell.
    let _ = started.send(());
    let timers = &shared.timers;
    let mut due: Vec<(u32, u32)> = Vec::with_capacity(64);
    let mut monitor = Monitor::new(&shared);
    let mut deadlines = DeadlineArms::new();
    let mut last_tick = Instant::now();
    let mut quiet_ticks = 0u32;
    // When to look again at roles whose woken GVThreads wait for the running
    // one's `wakeup_granularity` (see `Monitor::after_wakes`).
    let mut recheck: Option<Instant> = None;
    loop {
        if shared.is_stopped() {
            return;
        }
        timers.awake();
        if let Some(at) = timers.take_recheck() {
            recheck = Some(recheck.map_or(at, |r| r.min(at)));
        }
        let now = Instant::now();
        policy.check(now);
        shared.set_coarse_now(now);
        let next = timers.take_due_for_thread(now, &mut due);
        if !due.is_empty() {
            for (slot, generation) in due.drain(..) {
                shared.wake(slot, generation);
            }
            // Wake-up preemption for what just woke, without waiting for the
            // next tick.
            if !shared.monitor_idle.load(Ordering::SeqCst) {
                recheck = monitor.after_wakes(&shared).map(|d| now + d);
            }
            continue;
        }
        if let Some(at) = recheck
            && at <= now
        {
            recheck = if shared.monitor_idle.load(Ordering::SeqCst) {
                None
            } else {
                monitor.after_wakes(&shared).map(|d| now + d)
            };
        }
        let mut wait = next.map(|t| t.saturating_duration_since(now));
        if let Some(at) = recheck {
            let d = at.saturating_duration_since(now);
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        // Slot pool maintenance (memory/scavenge.rs): slots prepared ahead of
        // spawns, memory of long-free slots given back.
        if let Some(d) = shared.slots.housekeep() {
            wait = Some(wait.map_or(d, |w| w.min(d)));
        }
        // Preemption monitor: tick every `timer_interval` while a role is
        // busy; otherwise sleep until a role becomes busy (`wake_monitor`).
        let interval = Monitor::interval(&shared);
        if !shared.monitor_idle.load(Ordering::SeqCst) {
            if now.duration_since(last_tick) >= interval {
                last_tick = now;
                quiet_ticks = if monitor.tick(&shared) { 0 } else { quiet_ticks + 1 };
                if quiet_ticks >= QUIET_TICKS_BEFORE_IDLE {
                    // Idle only after a run of quiet ticks: a runtime that
                    // alternates between busy and idle every few microseconds
                    // (request/response traffic) would otherwise pay a futex
                    // wake of this thread on almost every busy transition.
                    quiet_ticks = 0;
                    shared.monitor_idle.store(true, Ordering::SeqCst);
                    // Re-check after publishing (pairs with `wake_monitor`).
                    if shared.workers.iter().any(|w| w.busy.load(Ordering::SeqCst)) {
                        shared.monitor_idle.store(false, Ordering::SeqCst);
                    }
                }
            }
            if !shared.monitor_idle.load(Ordering::SeqCst) {
                let until_tick = interval.saturating_sub(now.duration_since(last_tick));
                wait = Some(wait.map_or(until_tick, |w| w.min(until_tick)));
            }
        }
        // A hog beside the earliest sleeper is interrupted at its deadline
        // by its own thread's kernel timer, in case Linux keeps this thread
        // waiting for a CPU then (`preempt::deadline`).
        deadlines.before_sleep(&shared);
        timers.sleeping_until(now, wait);
        policy.before_sleep(wait);
        let planned = wait.and_then(|w| Instant::now().checked_add(w));
        timers.parker.park(wait);
        if let Some(planned) = planned {
            timers.note_wake(planned, Instant::now());
        }
    }
}
