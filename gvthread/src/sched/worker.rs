//! The worker *role* (Go's P): a run queue and the right to run GVThreads.
//!
//! A role is held by exactly one OS thread at a time (a [`Machine`], Go's M).
//! Keeping them apart lets a role move to another OS thread while the thread
//! that held it stays blocked (forced preemption, stuck system calls) without
//! the run queue noticing.
//!
//! [`Machine`]: super::machine::Machine

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::attention::{self, Attention};
use super::fair_share::FairShare;
use super::homeq::{HomeQueue, Links};
use super::machine::Machine;
use super::queue::LocalQueue;
use super::runnext::RunNext;
use crate::Priority;
use crate::memory::SlotCache;
use crate::memory::blocks::BlockCache;
use crate::preempt::CpuWatch;
use crate::util::futex::Parker;

/// Thread places per role beyond its share of `max_os_threads`, for the
/// two cases where a role would otherwise stall for want of a thread: its
/// threads all hold GVThreads blocked while unwinding, or all hold frozen
/// hogs while other GVThreads of the role wait to run (see `thread_cap`).
pub(crate) const EXTRA_THREADS: usize = 64;

/// One worker role.
///
/// Aligned to two cache lines (the adjacent-line prefetcher pairs them), so
/// the fields a role's holder writes at every switch (`runnext`,
/// `activity`, `since_ns`, ...) never share a line with another role's.
#[repr(align(128))]
pub(crate) struct Worker {
    /// Index in `Shared::workers`.
    pub(crate) index: usize,
    /// Runs only `Priority::Low` GVThreads.
    pub(crate) low_priority: bool,
    /// Normal-priority GVThreads that have not started yet (owner: the
    /// machine holding this role; other roles steal from it).
    pub(crate) local: LocalQueue,
    /// Runnable GVThreads bound to this role, one queue per priority
    /// (`Priority as usize`). Never stolen.
    pub(crate) home: [HomeQueue; 4],
    /// Bound Normal GVThreads that used up a time slice and yielded at a
    /// safepoint: taken after fresh and woken work.
    pub(crate) preempted: HomeQueue,
    /// Bound GVThreads frozen inside the preemption handler of one of this
    /// role's machines (`Header::bound` names which). Only that machine can
    /// resume one, so taking it hands the role over.
    pub(crate) frozen: HomeQueue,
    /// The OS threads (machines) of this role: index 0 is its first worker
    /// thread, the others its spares. A machine serves one role for life, so
    /// the thread-locals of these threads are only ever used by GVThreads of
    /// this role, one thread at a time. Slots never go back to null before
    /// shutdown.
    pub(crate) machines: Box<[AtomicPtr<Machine>]>,
    /// Thread places taken (threads started or starting), at most
    /// `machines.len()`.
    pub(crate) threads_reserved: AtomicUsize,
    /// Threads this role may have (`SchedulerConfig::max_os_threads` /
    /// roles). The [`EXTRA_THREADS`] places beyond it are only for roles
    /// that would stall without another thread:
    /// * its threads all hold GVThreads blocked while unwinding (see
    ///   `sched::park`): such a GVThread cannot leave its OS thread, so the
    ///   role could deadlock;
    /// * its threads all hold frozen hogs while other GVThreads of the role
    ///   wait to run (`preempt::signal`): frozen hogs are resumed in turn,
    ///   but without another thread nothing else of the role would run
    ///   until a hog ended, and one spinning until another GVThread of the
    ///   role acts would spin for ever.
    pub(crate) thread_cap: usize,
    /// The preemption handler or monitor wants another spare thread for
    /// this role (the spare starter makes it).
    pub(crate) want_spare: AtomicBool,
    /// The spare wanted may go beyond `thread_cap` (one of the cases
    /// named there).
    pub(crate) want_spare_beyond_cap: AtomicBool,
    /// Machines of this role that hold a GVThread frozen while it was
    /// blocked in a system call (waiting in the handler, or carrying the
    /// call out). Such a GVThread probably waits for a lock another frozen
    /// one holds, so a role with any does not start threads beyond its cap
    /// for hogs: more threads would only block on the same lock, and
    /// resuming the frozen in turn lets the holder release it.
    pub(crate) blocked_holds: AtomicUsize,
    /// Where the holding machine sleeps when idle.
    pub(crate) parker: Parker,
    /// Scheduling decisions made; every 61st looks at the global queue first.
    pub(crate) ticks: AtomicU32,
    /// Bumped at every switch (and by a yield that found nothing else to
    /// run); the preemption monitor watches it.
    pub(crate) activity: AtomicU64,
    /// Running GVThreads (not in the scheduler loop); the monitor watches only
    /// busy roles.
    pub(crate) busy: AtomicBool,
    /// Cooperative preemption requested: the next safepoint yields.
    pub(crate) preempt: AtomicBool,
    /// A GVThread was made runnable for this role (woken or spawned) since
    /// its last switch: the monitor preempts the running one once it has run
    /// for `wakeup_granularity` (wake-up preemption). Not set for a wake
    /// into `runnext` by the role's own GVThread, which `runnext` shows:
    /// read both through [`has_woken`](Self::has_woken).
    pub(crate) woken: AtomicBool,
    /// The GVThread woken is more urgent than the running one: preempt at
    /// once (the monitor retries at every tick until the role switches).
    pub(crate) urgent_wake: AtomicBool,
    /// Priority of the GVThread running now (`Priority as u8`): a wake of a
    /// more urgent one preempts it at once.
    pub(crate) running_prio: AtomicU8,
    /// When the running GVThread started running (coarse clock, ns; written
    /// at every switch).
    pub(crate) since_ns: AtomicU64,
    /// The holder thread's CPU time when the monitor first saw the running
    /// GVThread (see `preempt::cpu_time`).
    pub(crate) cpu_watch: CpuWatch,
    /// When a GVThread that used up its time slice (`frozen`, `preempted`)
    /// is due again: after the role gave each GVThread sharing it as much
    /// time (CPU-time fairness, see `sched::fair_share`).
    pub(crate) fair: FairShare,
    /// The machine holding this role (for the monitor's signals).
    pub(crate) holder: AtomicPtr<Machine>,
    /// The role was handed over by a hog frozen because a timer of the role
    /// fell due (`preempt::deadline`): the slot of that timer's GVThread
    /// (`u32::MAX`: none). The next scheduler loop fires due timers before
    /// it picks a GVThread.
    pub(crate) due_timer: AtomicU32,
    /// The GVThread this role runs next (Go's `runnext`): the last one woken
    /// or spawned by a GVThread on this role (`u32::MAX` if none). It keeps a
    /// waker and its wakee on one worker (a channel ping-pong never crosses
    /// OS threads) and is not stealable; the preemption monitor moves it to
    /// the global queue if it waits there for more than a monitor tick.
    pub(crate) runnext: RunNext,
    /// A push by this role's holder spilled the local queue into the global
    /// queue (it was full): the spawn that did it lets the queue run before
    /// it goes on (see [`help_after_spill`](super::park::help_after_spill)).
    /// Holder only.
    pub(crate) spilled: AtomicBool,
    /// Scheduling decisions left that take fresh GVThreads (the local, then
    /// the global queue) before `runnext` and the home queue: set by
    /// `help_after_spill`, so a spawner that yielded resumes behind the fresh
    /// GVThreads it queued, not in turns with them, and by `park_for_join`,
    /// so a joiner of a GVThread still queued resumes behind the whole batch.
    /// Counted down by the holder; cleared when a GVThread of this role uses
    /// up its time slice (`note_hog`) or at `drain_until_ns`, so the waiting
    /// GVThread waits at most about one slice.
    pub(crate) drain_local: AtomicU32,
    /// Until when (coarse clock, ns) `drain_local` holds: fresh GVThreads
    /// that run long (hogs) do not keep the spawner waiting for a slice
    /// each. Holder only.
    pub(crate) drain_until_ns: AtomicU64,
    /// Which queues that go ahead of `runnext` may hold work (urgent work,
    /// GVThreads that had their slice): the common decision reads this one
    /// word. Push to those queues through [`push_home`](Self::push_home),
    /// [`push_frozen`](Self::push_frozen) and
    /// [`push_preempted`](Self::push_preempted), which keep it right.
    pub(crate) attention: Attention,
    /// Free slots kept by this role (see `SlotCache`).
    pub(crate) slot_cache: SlotCache,
    /// Free join-state blocks kept by this role (see `memory::blocks`).
    pub(crate) join_blocks: BlockCache,
    /// Spawn credits this role holds: reservations of the live count that
    /// spawns on it take and exits on it give back (see `runtime::live`).
    pub(crate) spawn_credits: AtomicUsize,
}

impl Worker {
    pub(crate) fn new(index: usize, low_priority: bool, threads: usize) -> Worker {
        Worker {
            index,
            low_priority,
            local: LocalQueue::new(),
            home: Default::default(),
            preempted: HomeQueue::new(),
            frozen: HomeQueue::new(),
            machines: (0..threads.max(1) + EXTRA_THREADS).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect(),
            thread_cap: threads.max(1),
            want_spare: AtomicBool::new(false),
            want_spare_beyond_cap: AtomicBool::new(false),
            blocked_holds: AtomicUsize::new(0),
            threads_reserved: AtomicUsize::new(0),
            parker: Parker::new(),
            ticks: AtomicU32::new(0),
            activity: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            preempt: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            urgent_wake: AtomicBool::new(false),
            running_prio: AtomicU8::new(Priority::Normal as u8),
            since_ns: AtomicU64::new(0),
            cpu_watch: CpuWatch::new(),
            fair: FairShare::new(),
            holder: AtomicPtr::new(std::ptr::null_mut()),
            due_timer: AtomicU32::new(u32::MAX),
            runnext: RunNext::new(),
            spilled: AtomicBool::new(false),
            drain_local: AtomicU32::new(0),
            drain_until_ns: AtomicU64::new(0),
            attention: Attention::new(),
            slot_cache: SlotCache::new(),
            join_blocks: BlockCache::new(),
            spawn_credits: AtomicUsize::new(0),
        }
    }

    /// Counts progress. Only the holder writes `activity`, so a
    /// plain load and store suffice (no read-modify-write).
    #[inline]
    pub(crate) fn note_activity(&self) {
        self.activity.store(self.activity.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// Counts a switch at `now` (coarse clock, ns) and drops a cooperative
    /// preemption request (the switch honours it). A wake-up stays noted
    /// while woken GVThreads still wait (the switch may have resumed a
    /// GVThread that had its time slice instead): the next one is then
    /// preempted after `wakeup_granularity` too.
    #[inline]
    pub(crate) fn note_switch(&self, now: u64) {
        self.note_activity();
        self.since_ns.store(now, Ordering::Relaxed);
        self.clear_preempt_request();
        if self.woken.load(Ordering::Relaxed) && self.runnext.is_empty() && self.home.iter().all(HomeQueue::is_empty) {
            self.woken.store(false, Ordering::Relaxed);
            self.urgent_wake.store(false, Ordering::Relaxed);
        }
    }

    /// Records that the GVThread running now used up its time slice at
    /// `now` (coarse ns): the role's other work gets its share of time
    /// before it is due again (see `sched::fair_share`).
    pub(crate) fn note_hog(&self, now: u64, slice: u64) {
        self.fair.note_hog(now, self.since_ns.load(Ordering::Relaxed), slice);
        // A fresh GVThread that runs a whole slice ends a spawner's wait
        // behind them (see `drain_local`).
        self.drain_local.store(0, Ordering::Relaxed);
    }

    /// The home queue for bound GVThreads of priority `p`.
    #[inline]
    pub(crate) fn home_queue(&self, p: Priority) -> &HomeQueue {
        &self.home[p as usize]
    }

    /// Queues `slot`, bound to this role, on its home queue of priority `p`
    /// (any thread).
    #[inline]
    pub(crate) fn push_home(&self, links: &Links, p: Priority, slot: u32) {
        self.home[p as usize].push(links, slot);
        if matches!(p, Priority::Critical | Priority::High) {
            self.attention.raise(attention::URGENT);
        }
    }

    /// Queues `slot`, frozen by the preemption handler of one of this
    /// role's machines (async-signal-safe).
    pub(crate) fn push_frozen(&self, links: &Links, slot: u32) {
        self.frozen.push(links, slot);
        self.attention.raise(attention::HOGS);
    }

    /// Queues `slot`, bound to this role, after it yielded at the end of its
    /// time slice.
    pub(crate) fn push_preempted(&self, links: &Links, slot: u32) {
        self.preempted.push(links, slot);
        self.attention.raise(attention::HOGS);
    }

    /// Whether the role has as many threads as it may (`beyond_cap`: counting
    /// the [`EXTRA_THREADS`] places).
    pub(crate) fn is_full(&self, beyond_cap: bool) -> bool {
        self.threads_reserved.load(Ordering::Acquire) >= self.limit(beyond_cap)
    }

    fn limit(&self, beyond_cap: bool) -> usize {
        if beyond_cap { self.machines.len() } else { self.thread_cap }
    }

    /// Takes a thread place; false if the role has as many as it may.
    pub(crate) fn reserve_thread(&self, beyond_cap: bool) -> bool {
        let limit = self.limit(beyond_cap);
        let mut n = self.threads_reserved.load(Ordering::Relaxed);
        loop {
            if n >= limit {
                return false;
            }
            match self.threads_reserved.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(c) => n = c,
            }
        }
    }

    /// Gives back a place whose thread could not be started.
    pub(crate) fn unreserve_thread(&self) {
        self.threads_reserved.fetch_sub(1, Ordering::AcqRel);
    }

    /// Machines of this role started so far.
    pub(crate) fn machine_count(&self) -> usize {
        self.machines.iter().filter(|m| !m.load(Ordering::Acquire).is_null()).count()
    }

    /// Whether GVThreads were woken for this role since its last switch and
    /// still wait (wake-up preemption): `woken`, or a bound GVThread in
    /// `runnext` (a wake by the role's own running GVThread puts it there
    /// without setting `woken`; see `Shared::note_wake`). A spawn is not a
    /// wake: an unstarted GVThread waits for a free worker or the end of
    /// its spawner's time slice, as in Go, instead of cutting the spawner's
    /// slice short (a loop that spawns would otherwise give its worker away
    /// every `wakeup_granularity`, even with another worker idle to run
    /// what it spawns).
    #[inline]
    pub(crate) fn has_woken(&self) -> bool {
        self.woken.load(Ordering::Relaxed) || self.runnext.holds_bound()
    }

    /// Records woken work waiting for this role (`woken`), writing the
    /// flag's line only when it is not set yet.
    #[inline]
    pub(crate) fn note_woken(&self) {
        if !self.woken.load(Ordering::Relaxed) {
            self.woken.store(true, Ordering::Relaxed);
        }
    }

    /// Drops a cooperative preemption request.
    #[inline]
    pub(crate) fn clear_preempt_request(&self) {
        if self.preempt.load(Ordering::Relaxed) {
            self.preempt.store(false, Ordering::Relaxed);
        }
    }
}
