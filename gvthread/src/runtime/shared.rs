//! State shared by a runtime's threads, handles and wakers.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::config::SchedulerConfig;
use super::metrics::{Counters, RuntimeMetrics};
use super::role_threads::{self, RoleThread};
use crate::memory::SlotPool;
use crate::sched::homeq::Links;
use crate::sched::idle::Idle;
use crate::sched::inject::GlobalQueues;
use crate::sched::machine::{self, Machine};
use crate::sched::worker::Worker;
use crate::sync::cancel::CancellationToken;
use crate::task::header::{HEADER_SIZE, Header};
use crate::task::join::JoinCore;
use crate::timer::Timers;
use crate::util::futex::Parker;

/// Accepting spawns.
const RUNNING: u8 = 0;
/// Shutting down: no new spawns, waiting for live GVThreads.
const SHUTTING_DOWN: u8 = 1;
/// Stopped: workers leave their loops, nothing more runs.
const STOPPED: u8 = 2;

/// Body of every machine OS thread.
fn machine_thread(shared: Arc<Shared>, role: usize, primary: bool) {
    crate::memory::ensure_altstack(); // the overflow handler runs on it (memory/guard.rs)
    if let Some(hook) = &shared.config.on_worker_start {
        hook();
    }
    let stop_hook = shared.config.on_worker_stop.clone();
    // `worker_context`: its guard lives exactly as long as this machine runs.
    let context_guard = shared.config.worker_context.as_ref().map(|f| f());
    machine::run(shared, role, primary);
    drop(context_guard);
    if let Some(hook) = stop_hook {
        hook();
    }
}

/// Everything a runtime's threads share.
pub(crate) struct Shared {
    pub(crate) config: SchedulerConfig,
    pub(crate) slots: SlotPool,
    /// Ordinary roles first (`..num_normal_workers`), then low-priority ones.
    pub(crate) workers: Box<[Worker]>,
    pub(crate) num_normal_workers: usize,
    pub(crate) num_low_workers: usize,
    pub(crate) global: GlobalQueues,
    /// Link words of the home queues (`Worker::home`, one per slot).
    pub(crate) links: Links,
    /// Started GVThreads may run on any role (the `unsafe` opt-in
    /// `SchedulerConfig::free_migration`): homes are never claimed.
    pub(crate) free_migration: bool,
    /// The timer thread runs with the real-time policy (set once by
    /// `Runtime::try_new`; see `SchedulerConfig::realtime_timer_thread`).
    pub(crate) realtime_timer: AtomicBool,
    pub(crate) idle: Idle,
    pub(crate) idle_low: Idle,
    pub(crate) timers: Timers,
    pub(crate) root_token: CancellationToken,
    /// Live GVThreads plus the spawn credits roles hold (see
    /// `runtime::live`; `live_count` is the number alive).
    pub(crate) live: AtomicUsize,
    pub(crate) max_gvthreads: usize,
    lifecycle: AtomicU8,
    done_lock: Mutex<()>,
    done_cv: Condvar,
    /// Where the spare starter thread sleeps (see `preempt::spares`).
    pub(crate) spare_starter: Parker,
    /// OS threads of the machines, waited for at shutdown (they then
    /// return to the process's pool: `runtime::role_threads`).
    pub(crate) threads: Mutex<Vec<RoleThread>>,
    /// Start of the coarse clock.
    pub(crate) epoch: std::time::Instant,
    /// `CLOCK_MONOTONIC` (ns) at `epoch`, for [`mono_coarse_now`](Self::mono_coarse_now).
    epoch_mono_ns: u64,
    /// Coarse clock: ns since `epoch`, advanced by the timer thread at every
    /// wake-up (every tick while any role is busy). Scheduling decisions read
    /// it instead of the system clock.
    pub(crate) coarse_ns: std::sync::atomic::AtomicU64,
    /// The monitor sleeps because no role was busy; the next busy role wakes it.
    pub(crate) monitor_idle: AtomicBool,
    pub(crate) metrics: Counters,
}

impl Shared {
    pub(crate) fn new(config: SchedulerConfig, slots: SlotPool) -> Shared {
        let normal = config.resolved_workers();
        let low = config.num_low_priority_workers;
        let per_role = config.threads_per_role();
        let workers = (0..normal + low).map(|i| Worker::new(i, i >= normal, per_role)).collect();
        Shared {
            links: Links::new(slots.capacity()),
            free_migration: config.free_migration,
            realtime_timer: AtomicBool::new(false),
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
            spare_starter: Parker::new(),
            threads: Mutex::new(Vec::new()),
            epoch: std::time::Instant::now(),
            epoch_mono_ns: crate::util::clock::mono_nanos(),
            coarse_ns: std::sync::atomic::AtomicU64::new(0),
            monitor_idle: AtomicBool::new(false),
            metrics: Counters::default(),
        }
    }

    /// Records `m` in a thread place of its role (reserved by
    /// `start_machine`), keeping it alive until shutdown: raw pointers to
    /// machines live in roles, headers and the monitor.
    pub(crate) fn register_machine(&self, m: &Arc<Machine>) -> bool {
        let raw = Arc::into_raw(m.clone()).cast_mut();
        for p in self.workers[m.role].machines.iter() {
            if p.compare_exchange(std::ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return true;
            }
        }
        // SAFETY: `raw` came from `Arc::into_raw` just above and was not stored.
        drop(unsafe { Arc::from_raw(raw) });
        false
    }

    /// Machines started so far (all roles).
    pub(crate) fn machine_count(&self) -> usize {
        self.workers.iter().map(Worker::machine_count).sum()
    }

    /// Every registered machine.
    fn each_machine(&self, mut f: impl FnMut(&Machine)) {
        for w in self.workers.iter() {
            for p in w.machines.iter() {
                let m = p.load(Ordering::Acquire);
                // SAFETY: registered machines stay alive until `clear_machines`.
                if let Some(m) = unsafe { m.as_ref() } {
                    f(m);
                }
            }
        }
    }

    /// Drops the registry (after the threads stopped), breaking the cycle
    /// between machines and this structure.
    pub(crate) fn clear_machines(&self) {
        for w in self.workers.iter() {
            for p in w.machines.iter() {
                let m = p.swap(std::ptr::null_mut(), Ordering::AcqRel);
                if !m.is_null() {
                    // SAFETY: stored by `register_machine` from `Arc::into_raw`,
                    // and swapped out here exactly once.
                    drop(unsafe { Arc::from_raw(m) });
                }
            }
        }
    }

    /// Starts an OS thread running a machine of role `role` (holding it if
    /// `primary`, else as a spare), if the role has a free thread place.
    pub(crate) fn start_machine(self: &Arc<Self>, role: usize, primary: bool, beyond_cap: bool) -> std::io::Result<()> {
        let w = &self.workers[role];
        if !w.reserve_thread(beyond_cap) {
            self.metrics.thread_cap_reached.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::other("the role has max_os_threads / roles threads already"));
        }
        let name = match (w.low_priority, primary) {
            (true, true) => format!("gvthread-low-{role}"),
            (false, true) => format!("gvthread-worker-{role}"),
            (_, false) => format!("gvthread-spare-{role}"),
        };
        let sh = self.clone();
        match role_threads::run(name, move || machine_thread(sh, role, primary)) {
            Ok(t) => {
                self.metrics.os_threads_started.fetch_add(1, Ordering::Relaxed);
                self.threads.lock().unwrap_or_else(|e| e.into_inner()).push(t);
                Ok(())
            }
            Err(e) => {
                w.unreserve_thread();
                Err(e)
            }
        }
    }

    /// A snapshot of the counters.
    pub(crate) fn metrics_snapshot(&self) -> RuntimeMetrics {
        let c = &self.metrics;
        RuntimeMetrics {
            live_gvthreads: self.live_count(),
            forced_preemptions: Counters::load(&c.forced_preemptions),
            cooperative_preemptions: Counters::load(&c.cooperative_preemptions),
            preempt_requests: Counters::load(&c.preempt_requests),
            wakeup_preemptions: Counters::load(&c.wakeup_preemptions),
            deadline_preemptions: Counters::load(&c.deadline_preemptions),
            signals_sent: Counters::load(&c.signals_sent),
            handoffs: Counters::load(&c.handoffs),
            syscall_handoffs: Counters::load(&c.syscall_handoffs),
            no_spare: Counters::load(&c.no_spare),
            unsafe_point_retries: Counters::load(&c.unsafe_point_retries),
            not_running: Counters::load(&c.not_running),
            thread_cap_reached: Counters::load(&c.thread_cap_reached),
            os_threads: self.machine_count(),
            spare_threads: self.workers.iter().map(crate::preempt::spare_count).sum(),
            compacted_gvthreads: self.slots.compact_stats().compacted.load(Ordering::Relaxed),
            compacted_bytes: self.slots.compact_stats().bytes.load(Ordering::Relaxed),
            compactions: Counters::load(&self.slots.compact_stats().compactions),
            restores: Counters::load(&self.slots.compact_stats().restores),
            restore_latency_us: std::array::from_fn(|i| Counters::load(&self.slots.compact_stats().latency[i])),
            realtime_timer_thread: self.realtime_timer.load(Ordering::Relaxed),
        }
    }

    /// Marks `slot` as frozen in the signal handler of `m`. Async-signal-safe.
    pub(crate) fn bind(&self, slot: u32, m: &Machine) {
        // SAFETY: the header of a live slot is valid; `bound` is atomic.
        unsafe { (*self.header(slot)).bound.store(m as *const Machine as *mut Machine, Ordering::Release) };
    }

    /// Takes the machine `slot` is bound to (null if none).
    pub(crate) fn take_bound_machine(&self, slot: u32) -> *const Machine {
        // SAFETY: as above.
        unsafe { (*self.header(slot)).bound.swap(std::ptr::null_mut(), Ordering::AcqRel) }
    }

    /// `no_preempt` depth of the running GVThread in `slot`.
    pub(crate) fn no_preempt_depth(&self, slot: u32) -> u32 {
        // SAFETY: only the GVThread itself (and its own thread's signal
        // handler) touches this field.
        unsafe { (*self.header(slot)).no_preempt.get() }
    }

    pub(crate) fn enter_no_preempt(&self, slot: u32) {
        // SAFETY: as above.
        unsafe {
            let c = &(*self.header(slot)).no_preempt;
            c.set(c.get() + 1);
        }
    }

    /// Returns the remaining depth.
    pub(crate) fn leave_no_preempt(&self, slot: u32) -> u32 {
        // SAFETY: as above.
        unsafe {
            let c = &(*self.header(slot)).no_preempt;
            c.set(c.get() - 1);
            c.get()
        }
    }

    /// The coarse clock (see `coarse_ns`). Async-signal-safe.
    #[inline]
    pub(crate) fn coarse_now(&self) -> u64 {
        self.coarse_ns.load(Ordering::Relaxed)
    }

    /// The coarse clock in `CLOCK_MONOTONIC` nanoseconds, the domain of
    /// `util::clock::coarse_nanos` (to within its resolution): for
    /// bookkeeping on hot paths that other code compares with that clock
    /// (how long a GVThread has been parked). An atomic load, no clock read;
    /// at most a tick behind while any role is busy (a role that becomes
    /// busy advances it first: `Machine::run_gvthread`).
    #[inline]
    pub(crate) fn mono_coarse_now(&self) -> u64 {
        self.epoch_mono_ns.wrapping_add(self.coarse_now())
    }

    /// `time_slice` in ns.
    #[inline]
    pub(crate) fn time_slice_ns(&self) -> u64 {
        self.config.time_slice.as_nanos().min(u64::MAX as u128) as u64
    }

    /// Records that the GVThread running on `w` used up its time slice now.
    /// Async-signal-safe.
    pub(crate) fn note_hog(&self, w: &Worker) {
        w.note_hog(self.coarse_now(), self.time_slice_ns());
    }

    /// Advances the coarse clock to `now` (the timer thread).
    pub(crate) fn set_coarse_now(&self, now: std::time::Instant) {
        let ns = now.saturating_duration_since(self.epoch).as_nanos().min(u64::MAX as u128) as u64;
        self.coarse_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Wakes the monitor if it sleeps (a role just became busy).
    /// Async-signal-safe (atomics and a futex wake).
    #[inline]
    pub(crate) fn wake_monitor(&self) {
        if self.monitor_idle.load(Ordering::SeqCst) && self.monitor_idle.swap(false, Ordering::SeqCst) {
            self.timers.parker.unpark();
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
        self.lifecycle.load(Ordering::SeqCst) >= SHUTTING_DOWN
    }

    /// Whether workers must stop.
    #[inline]
    pub(crate) fn is_stopped(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) == STOPPED
    }

    /// Wakes the thread waiting for every GVThread to be gone (`wait_idle`).
    pub(crate) fn notify_idle(&self) {
        let _g = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.done_cv.notify_all();
    }

    /// Stops accepting spawns and cancels every GVThread's token.
    pub(crate) fn begin_shutdown(&self) {
        let _ = self.lifecycle.compare_exchange(RUNNING, SHUTTING_DOWN, Ordering::SeqCst, Ordering::SeqCst);
        // After the flag (see `runtime::live`): no credit stays cached.
        self.reclaim_all_credits();
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
            let live = self.live_count();
            let now = std::time::Instant::now();
            if live == 0 || now >= deadline {
                return live;
            }
            g = self.done_cv.wait_timeout(g, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Stops the workers and the timer thread.
    pub(crate) fn stop(&self) {
        self.lifecycle.store(STOPPED, Ordering::SeqCst);
        self.each_machine(Machine::release_waiter);
        self.spare_starter.unpark();
        self.idle.notify_all(&self.workers);
        self.idle_low.notify_all(&self.workers);
        for w in self.workers.iter() {
            w.parker.unpark();
        }
        self.timers.parker.unpark();
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
