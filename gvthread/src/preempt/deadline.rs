//! Deadlines interrupt hogs directly: a timer that falls due while a hog
//! runs on its GVThread's role frees the role through the hog's own thread,
//! without waiting for the timer thread.
//!
//! # Why
//!
//! A sleeper beside a hog needs two things at its deadline: its timer fired
//! (it becomes runnable on its role) and the hog preempted (the role runs
//! it). Both used to wait for the timer thread, and on a machine whose CPUs
//! all run hogs Linux can keep that thread waiting for a CPU for 1-4 ms
//! after its sleep ends: EEVDF does not let a woken thread that is not owed
//! CPU time preempt the running one, and a short requested slice does not
//! change that (`util::slice`). That wait was the tail of a 1 ms sleeper
//! beside four spinners on two workers (p99 1-3 ms in most runs).
//!
//! # How
//!
//! Each machine has a kernel timer that signals its own thread
//! (`util::thread_timer`, tagged [`DEADLINE_TAG`]). The kernel fires it
//! from its timer interrupt and interrupts the thread where it runs, so a
//! running hog's thread gets the signal on time whatever else wants the CPU.
//! It is armed for the earliest timer queued (`Timers::head`), if that
//! timer's GVThread is bound to a role that runs a GVThread, to go off
//! [`TIMER_THREAD_GRACE`] after the deadline:
//!
//! * by the timer thread before it sleeps, on the role's holder (a timer
//!   thread on time fires the timer, preempts the hog, and re-arms for the
//!   next timer before this one goes off: no signal);
//! * by a thread that takes the role over (a spare, or a frozen hog that
//!   resumes: the usual next holder beside a sleeper), on its own thread,
//!   since a timer armed earlier signals the role's previous thread;
//! * by the handler itself, when it looked too early (see below).
//!
//! Only while the timer thread has woken late recently
//! (`Timers::recently_late`): on a machine with a CPU to spare it is on
//! time, and the signals and system calls here would buy nothing.
//!
//! The handler ([`on_signal`]) weighs the same rules as wake-up preemption
//! (`monitor`, `preempt_for_wake`): the timer is due, the running GVThread
//! has had its `wakeup_granularity` (not needed if the sleeper is more
//! urgent), and its thread's CPU clock shows it running (`cpu_time`). When
//! one of these is still missing it arms the timer again for when it could
//! hold. When all hold it freezes the hog like any forced preemption
//! (`signal::preempt_here`, request `PREEMPT_DEADLINE`), but hands the role
//! only to a spare thread, naming the sleeper in the role's `due_timer`:
//! the spare's scheduler loop fires the due timers itself
//! ([`fire_for_role`]) and runs the woken sleeper, which its own wake put in
//! `runnext`.
//!
//! # Races
//!
//! * The timer thread still fires every timer; whichever side takes a due
//!   timer from the queue (under its lock) wakes it. When the timer thread
//!   took the sleeper's timer first, the spare waits (at most
//!   [`TIMER_THREAD_WAKE_WAIT`]) for that wake before it picks a GVThread:
//!   otherwise it would hand the role straight back to the hog, and the
//!   sleeper, woken a moment later, would wait for the hog's granularity
//!   (measured: 1.1-1.2 ms in 1-2 % of a 1 ms sleeper's wakes beside one hog
//!   on one worker).
//! * A deadline signal that finds the timer fired already finds the next one
//!   in the queue: it arms for that one if it is its role's, else does
//!   nothing.
//! * Both kinds of signal are SIGURG, which is not queued: one sent while the
//!   other is pending is lost. The handler therefore does both jobs whichever
//!   signal arrived (`signal::on_our_signal`). And a deadline timer re-armed
//!   while its signal is pending has that signal discarded, together with a
//!   monitor request whose signal it swallowed: a request still pending a
//!   while after its signal is sent again (`Machine::resend_if_stale`).
//! * The freeze dates the hog's turn by the coarse clock, which only the
//!   timer thread advances and which is late exactly when this path acts;
//!   the handler advances it first, or the hog would seem to have run
//!   nothing and be due again at once (`sched::fair_share`).
//!
//! Everything here that runs in the handler uses only atomics, clock reads
//! and `timer_settime`, which are async-signal-safe.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cpu_time;
use super::spares::request_spare;
use crate::arch::Interrupted;
use crate::runtime::shared::Shared;
use crate::sched::machine::{Machine, NO_GVTHREAD, PREEMPT_DEADLINE};
use crate::sched::worker::Worker;
use crate::task::state;

/// The value the deadline timers' signals carry (see `signal::tag_of`).
pub(crate) const DEADLINE_TAG: usize = 0x6776_7468_6475_6521;

/// How long after a timer's deadline this path steps in: a timer thread on
/// time has fired the timer by then (and re-armed the deadline timer for the
/// next one); a late one costs the sleeper this much, not milliseconds.
const TIMER_THREAD_GRACE: Duration = Duration::from_micros(50);

/// Wait before looking again when the look at the hog's CPU clock was the
/// first (its evidence counts from there, see `cpu_time`).
const AFTER_FIRST_LOOK: Duration = Duration::from_micros(20);

/// Wait before looking again when no spare thread was there to take the
/// role (one was asked for).
const NO_SPARE_WAIT: Duration = Duration::from_micros(100);

/// Longest the spare that took a role for a due timer waits for the timer
/// thread's wake of its sleeper, when the timer thread took the timer first
/// (see the module docs). That thread is awake then, between taking the
/// timer and waking its GVThread, which is a matter of microseconds.
const TIMER_THREAD_WAKE_WAIT: Duration = Duration::from_micros(100);

/// What role `w` should do about the earliest timer queued.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Its timer is due and the running GVThread may be preempted for it:
    /// the slot of the timer's GVThread.
    Freeze(u32),
    /// Not yet: look again after this long.
    LookAgain(Duration),
    /// The earliest timer is not for this role (or there is none).
    Nothing,
}

impl Plan {
    /// When a deadline timer armed now should go off for this plan (`None`:
    /// not at all). For a caller without evidence (see [`plan`]), a freeze
    /// means "signal now": the handler weighs it again.
    fn arm_after(&self) -> Option<Duration> {
        match *self {
            Plan::Freeze(_) => Some(Duration::ZERO),
            Plan::LookAgain(wait) => Some(wait),
            Plan::Nothing => None,
        }
    }
}

/// Weighs the earliest timer for role `w`, held by `holder`, which runs a
/// GVThread. `evidence`: the caller runs on `holder`'s thread and may look
/// at its CPU clock (the handler); otherwise a due timer is enough for
/// [`Plan::Freeze`], which then only means "signal now". Async-signal-safe.
fn plan(sh: &Shared, w: &Worker, holder: &Machine, now: Instant, evidence: bool) -> Plan {
    if !sh.timers.recently_late(now) {
        return Plan::Nothing;
    }
    // A timer counts as due here once it is `TIMER_THREAD_GRACE` overdue.
    let Some((until_due, slot)) = sh.timers.head(now.checked_sub(TIMER_THREAD_GRACE).unwrap_or(now)) else {
        return Plan::Nothing;
    };
    let Some(word) = sh.slots.state_if_valid(slot).map(|st| st.load(Ordering::Relaxed)) else {
        return Plan::Nothing;
    };
    if state::home(word) != Some(w.index) {
        return Plan::Nothing;
    }
    let urgent = state::priority(word) < w.running_prio.load(Ordering::Relaxed);
    let granularity = sh.wakeup_granularity_ns();
    let short = if urgent {
        0
    } else {
        let now_ns = now.saturating_duration_since(sh.epoch).as_nanos().min(u128::from(u64::MAX)) as u64;
        let ran = now_ns.saturating_sub(w.since_ns.load(Ordering::Relaxed));
        granularity.saturating_sub(ran)
    };
    let wait = until_due.max(Duration::from_nanos(short));
    if !wait.is_zero() {
        return Plan::LookAgain(wait);
    }
    if !evidence || urgent {
        return Plan::Freeze(slot);
    }
    let activity = w.activity.load(Ordering::Relaxed);
    match cpu_time::used_since_look(w, holder, activity).map(|used| cpu_time::running(used, granularity)) {
        Some(0) => Plan::Freeze(slot),
        Some(missing) => Plan::LookAgain(Duration::from_nanos(missing)),
        None => Plan::LookAgain(AFTER_FIRST_LOOK),
    }
}

/// The timer thread's arming of deadline timers: the last one it armed, so
/// that it arms again only when the target changed.
pub(crate) struct DeadlineArms {
    last: Option<(*const Machine, Instant)>,
}

impl DeadlineArms {
    pub(crate) fn new() -> DeadlineArms {
        DeadlineArms { last: None }
    }

    /// Before the timer thread sleeps: if the earliest timer's GVThread is
    /// bound to a role that runs a GVThread, arms the role's holder's
    /// deadline timer for when the role could be preempted for it, and asks
    /// for a spare thread to take the role then.
    pub(crate) fn before_sleep(&mut self, sh: &Shared) {
        if !sh.config.enable_forced_preempt {
            return;
        }
        let now = Instant::now();
        let Some((_, slot)) = sh.timers.head(now) else { return };
        let Some(home) = sh.slots.state_if_valid(slot).and_then(|st| state::home(st.load(Ordering::Relaxed))) else {
            return;
        };
        let Some(w) = sh.workers.get(home) else { return };
        if !w.busy.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: machines stay alive while registered in `shared`, which
        // outlives the timer thread's use.
        let Some(holder) = (unsafe { w.holder.load(Ordering::Acquire).as_ref() }) else { return };
        let Some(timer) = &holder.deadline_timer else { return };
        let Some(wait) = plan(sh, w, holder, now, false).arm_after() else { return };
        let target = (holder as *const Machine, now + wait);
        if self.last == Some(target) {
            return;
        }
        self.last = Some(target);
        timer.fire_after(wait);
        request_spare(sh, w, false);
    }
}

/// Role `w` just came to `m`'s thread (a spare took it, or a frozen
/// GVThread resumed with it): arms `m`'s deadline timer for the earliest
/// timer if it is for this role, since a timer armed earlier signals the
/// role's previous thread. Async-signal-safe.
pub(crate) fn arm_for_role(m: &Machine) {
    let Some(timer) = &m.deadline_timer else { return };
    if let Some(wait) = plan(&m.shared, m.worker(), m, Instant::now(), false).arm_after() {
        timer.fire_after(wait);
    }
}

/// The freeze found no spare thread of the role (one was asked for): looks
/// again shortly. Async-signal-safe.
pub(crate) fn no_spare(m: &Machine) {
    if let Some(timer) = &m.deadline_timer {
        timer.fire_after(NO_SPARE_WAIT);
    }
}

/// The handler of a deadline timer's signal on `m`'s thread, interrupted at
/// `at`: freezes the running GVThread if a timer of its role is due and it
/// may be preempted for it, else arms the timer again for when it could.
///
/// # Safety
/// Called only from the signal handler on `m`'s own thread.
pub(crate) unsafe fn on_signal(m: &Machine, at: Interrupted) {
    let w = m.worker_ptr();
    if w.is_null() || m.current_slot() == NO_GVTHREAD || m.in_handler.get() {
        return;
    }
    // SAFETY: a non-null role pointer targets an element of the runtime's
    // worker array, which `m.shared` keeps alive.
    let w = unsafe { &*w };
    let now = Instant::now();
    match plan(&m.shared, w, m, now, true) {
        Plan::Freeze(slot) => {
            // The request is about the GVThread running now (as the
            // monitor's requests are, see `Machine::preempt_activity`).
            m.preempt_activity.store(w.activity.load(Ordering::Relaxed), Ordering::Relaxed);
            // The freeze dates the hog's turn by the coarse clock, which only
            // the timer thread advances, and it may be late now: the hog
            // would seem to have run nothing yet and be due again at once
            // (`sched::fair_share`).
            m.shared.set_coarse_now(now);
            // For the spare that takes the role if the freeze happens (see
            // `fire_for_role`).
            m.due_slot.set(slot);
            // SAFETY: on `m`'s own thread, from its signal handler.
            unsafe { super::signal::preempt_here(m, PREEMPT_DEADLINE, at) };
        }
        Plan::LookAgain(wait) => {
            if let Some(timer) = &m.deadline_timer {
                timer.fire_after(wait);
            }
        }
        Plan::Nothing => {}
    }
}

/// From the scheduler loop of a machine that took role `w` from a hog
/// frozen for a due timer (`w.due_timer` names the sleeper): fires the due
/// timers, and if the sleeper is still parked (the timer thread took its
/// timer first and is about to wake it), waits for that wake, briefly.
pub(crate) fn fire_for_role(sh: &Shared, w: &Worker) {
    let slot = w.due_timer.swap(u32::MAX, Ordering::Acquire);
    if slot == u32::MAX {
        return;
    }
    crate::timer::fire_due(sh);
    let Some(st) = sh.slots.state_if_valid(slot) else { return };
    // Woken means queued too: a wake publishes the state word first and
    // queues the GVThread after.
    let woken = || state::kind(st.load(Ordering::Acquire)) != state::PARKED && sh.has_unfrozen_work(w);
    let start = Instant::now();
    while !woken() && start.elapsed() < TIMER_THREAD_WAKE_WAIT {
        // Not a spin: the timer thread may be waiting for this very CPU.
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use crate::{Runtime, SchedulerConfig};

    /// A sleeper beside a hog on one worker wakes at its deadline through
    /// the hog's own thread: with the timer thread firing nothing (as if
    /// Linux kept it off the CPU), the hog is frozen for the due timer and
    /// the role's next thread fires it. Before this path existed the sleeper
    /// slept until the watchdog let the timer thread fire again.
    #[test]
    fn a_due_sleeper_beside_a_hog_wakes_without_the_timer_thread() {
        let rt = Runtime::new(SchedulerConfig::default().num_workers(1));
        let h = rt.handle();
        h.shared.timers.hold_firing.store(true, Ordering::Relaxed);
        // As late as a timer thread that does not fire can be.
        h.shared.timers.pretend_late();
        // Watchdog: after 30 s the timer thread fires again, so that a
        // failure ends (and says so).
        let released = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (shared, released, done) = (h.shared.clone(), released.clone(), done.clone());
            std::thread::spawn(move || {
                let give_up = Instant::now() + Duration::from_secs(30);
                while !done.load(Ordering::Relaxed) && Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(10));
                }
                released.store(true, Ordering::SeqCst);
                shared.timers.hold_firing.store(false, Ordering::Relaxed);
            })
        };
        let woke = Arc::new(AtomicBool::new(false));
        let w = woke.clone();
        let hog = h.spawn(move |_| {
            // No yield points: only a signal takes the worker away.
            let limit = Instant::now() + Duration::from_secs(60);
            while !w.load(Ordering::Relaxed) && Instant::now() < limit {
                std::hint::spin_loop();
            }
        });
        let (w, r) = (woke.clone(), released.clone());
        let sleeper = h.spawn(move |_| {
            for _ in 0..3 {
                crate::sleep(Duration::from_millis(1));
            }
            let released_first = r.load(Ordering::SeqCst);
            w.store(true, Ordering::Relaxed);
            released_first
        });
        let released_first = sleeper.join().unwrap();
        hog.join().unwrap();
        done.store(true, Ordering::Relaxed);
        watchdog.join().unwrap();
        let m = h.metrics();
        assert!(!released_first, "the sleeper woke only once the timer thread fired again: {m:?}");
        assert!(m.deadline_preemptions >= 3, "{m:?}");
    }
}
