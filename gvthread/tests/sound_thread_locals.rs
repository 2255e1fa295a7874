//! Thread-bound state across blocking calls, under the default settings.
//!
//! LLVM computes a `thread_local!`'s address once per function and may keep
//! it across calls, and a GVThread's stack can hold `!Send` handles to its OS
//! thread's data (an `Rc` out of a thread-local). With free migration these
//! would be used by two OS threads at once. Under the default rules (a
//! started GVThread runs only on its role's threads, one at a time) no
//! thread-bound object may ever be used by two threads at once. Each object
//! here carries a detector: a flag set while it is in use; finding it already
//! set means two threads use it at once.
//!
//! Run in release (CI does): that is where the addresses are cached. A CPU
//! hog on the same workers forces hand-offs to spare threads throughout.
//!
//! Thread-local destructors: a spare can initialise a thread-local through
//! an address cached on another thread of its role (the state check) and
//! register the destructor with itself. Before role threads were kept for
//! good (`runtime::role_threads`), the threads' exits at runtime drop then
//! freed values twice (glibc "double free or corruption" in most release
//! runs of the first test). Role threads no longer exit, so thread-local
//! destructors never run on them; the last test checks that no value is
//! dropped twice, and the process not aborting checks the rest.
//!
//! Each use of a thread-bound object runs inside `gvthread::no_preempt`, so
//! that forced preemption never freezes a GVThread half way through one: that
//! is the one residual case `docs/safety.md` names (a GVThread frozen in the
//! middle of an update, and another GVThread of its role reaching the same
//! object meanwhile: reentrancy, as with a signal handler). What these tests
//! check is the rule that makes everything else sound: two OS threads never
//! use such an object at the same time, whatever addresses LLVM cached
//! across the blocking calls in between.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Runtime, SchedulerConfig};

/// Counts uses of a thread-bound object that overlapped another use.
static OVERLAPS: AtomicU64 = AtomicU64::new(0);
/// Counts uses in all.
static USES: AtomicU64 = AtomicU64::new(0);

/// A thread-bound object with a detector for concurrent use.
struct Detected<T> {
    in_use: AtomicBool,
    value: T,
}

impl<T> Detected<T> {
    const fn new(value: T) -> Self {
        Detected { in_use: AtomicBool::new(false), value }
    }

    #[inline(never)]
    fn use_it<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        if self.in_use.swap(true, Ordering::AcqRel) {
            OVERLAPS.fetch_add(1, Ordering::Relaxed);
        }
        USES.fetch_add(1, Ordering::Relaxed);
        // Widen the window a little so overlaps would show.
        for _ in 0..20 {
            std::hint::spin_loop();
        }
        let r = f(&self.value);
        self.in_use.store(false, Ordering::Release);
        r
    }
}

thread_local! {
    static BUF: Detected<RefCell<Vec<u64>>> = const { Detected::new(RefCell::new(Vec::new())) };
    static SHARED_RC: Rc<Detected<Cell<u64>>> = Rc::new(Detected::new(Cell::new(0)));
    static DEPTH: Cell<i64> = const { Cell::new(0) };
}

#[inline(never)]
fn push(b: &Detected<RefCell<Vec<u64>>>, v: u64) {
    gvthread::no_preempt(|| {
        b.use_it(|b| {
            let mut g = b.borrow_mut();
            g.push(v);
            if g.len() > 64 {
                g.clear();
            }
        })
    });
}

/// The pattern: the thread-local's address is computed once in this
/// function and reused after the yield.
#[inline(never)]
fn tls_across_yields(n: u64) {
    for i in 0..n {
        BUF.with(|b| push(b, i));
        gvthread::yield_now();
        BUF.with(|b| push(b, i));
    }
}

/// An `Rc` cloned out of a thread-local and kept across parks (how
/// `rand::thread_rng()` works): its reference count is not atomic.
#[inline(never)]
fn rc_across_parks(n: u64) {
    for i in 0..n {
        let rc = gvthread::no_preempt(|| {
            let rc = SHARED_RC.with(|r| r.clone());
            rc.use_it(|c| c.set(c.get() + 1));
            rc
        });
        if i % 4 == 0 {
            gvthread::sleep(Duration::from_micros(50));
        } else {
            gvthread::yield_now();
        }
        gvthread::no_preempt(|| {
            rc.use_it(|c| c.set(c.get() + 1));
            drop(rc);
        });
    }
}

/// A `tracing`-style guard: entering bumps a per-thread depth, leaving
/// lowers it; it must leave on the thread it entered on.
struct Entered(i64);
impl Entered {
    fn enter() -> Entered {
        DEPTH.with(|d| d.set(d.get() + 1));
        Entered(common::os_thread_id())
    }
}
impl Drop for Entered {
    fn drop(&mut self) {
        if common::os_thread_id() != self.0 {
            MOVED_GUARDS.fetch_add(1, Ordering::Relaxed);
        }
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Guards left on another thread than the one they entered on.
static MOVED_GUARDS: AtomicU64 = AtomicU64::new(0);

/// Forced preemptions `beside_a_hog` waits for before its GVThreads stop.
const HANDOFFS_WANTED: u64 = 4;

/// Runs `body` on 4 GVThreads on 2 workers beside CPU hogs that force
/// hand-offs (they are frozen, and a spare takes their role, throughout).
///
/// Each GVThread runs `body` in rounds of 20,000 until the hogs were frozen
/// [`HANDOFFS_WANTED`] times: one round takes about 3 ms in release, which is
/// about one time slice, and a hog that waits in the queue of the worker
/// running the other hog starts only when that one's slice ends. Bounded by
/// a deadline (then the callers' assertions say the test proved nothing)
/// and by the watchdog.
fn beside_a_hog(body: fn(u64)) -> gvthread::RuntimeMetrics {
    let _w = common::watchdog("thread-bound state beside a hog", Duration::from_secs(480));
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2).time_slice(Duration::from_millis(2)));
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            rt.handle().spawn(move |_| {
                while !s.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    rt.block_on(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let hs: Vec<_> = (0..4)
            .map(|_| {
                gvthread::spawn(move |_| {
                    let rt = gvthread::Handle::current();
                    loop {
                        body(20_000);
                        if rt.metrics().forced_preemptions >= HANDOFFS_WANTED || Instant::now() > deadline {
                            break;
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    rt.metrics()
}

#[test]
fn thread_locals_across_yields_are_never_used_by_two_threads_at_once() {
    let m = beside_a_hog(tls_across_yields);
    assert!(USES.load(Ordering::Relaxed) >= 4 * 2 * 20_000);
    assert_eq!(OVERLAPS.load(Ordering::Relaxed), 0, "a thread-local was used by two OS threads at once: {m:?}");
    assert!(m.forced_preemptions > 0, "the hogs were never preempted: the test proved nothing ({m:?})");
}

#[test]
fn an_rc_out_of_a_thread_local_is_never_used_by_two_threads_at_once() {
    let m = beside_a_hog(rc_across_parks);
    assert_eq!(OVERLAPS.load(Ordering::Relaxed), 0, "an Rc was used by two OS threads at once: {m:?}");
    assert!(m.forced_preemptions > 0, "the hogs were never preempted: the test proved nothing ({m:?})");
}

#[test]
fn guards_across_parks_stay_balanced() {
    let _w = common::watchdog("guards_across_parks_stay_balanced", Duration::from_secs(120));
    // Hogs run on a role of their own (Low priority on a dedicated worker),
    // so their hand-offs happen beside, not under, the guarded GVThreads.
    // On a loaded machine (CI runs this beside two busy loops) Linux can keep
    // a guarded role's thread off the CPU for over a millisecond while its
    // sleepers' timers fire; the role must not change threads for that,
    // since none of its GVThreads runs long on the CPU (`preempt::cpu_time`).
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2).num_low_priority_workers(1));
    let unbalanced = rt.block_on(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let hog = gvthread::spawn_with_priority(gvthread::Priority::Low, move |_| {
            while !s.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let hs: Vec<_> = (0..8)
            .map(|_| {
                gvthread::spawn(|_| {
                    for i in 0..5_000 {
                        let _g = Entered::enter();
                        if i % 2 == 0 {
                            gvthread::yield_now();
                        } else {
                            gvthread::sleep(Duration::from_micros(20));
                        }
                    }
                    // Every GVThread of this worker ends here with its
                    // guards left: the thread's depth counts only guards of
                    // GVThreads still inside one.
                    DEPTH.with(|d| d.get())
                })
            })
            .collect();
        let depths: Vec<i64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        depths
    });
    let m = rt.metrics();
    assert_eq!(
        MOVED_GUARDS.load(Ordering::Relaxed),
        0,
        "a guard entered before a park was left on another thread: {m:?}"
    );
    assert!(unbalanced.iter().all(|&d| d >= 0), "a thread's guard depth went negative: {unbalanced:?}");
}

/// Thread-local values made and dropped (a destructor registered twice drops
/// one value twice).
static MADE: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

struct Counted(Vec<u64>);
impl Counted {
    fn new() -> Counted {
        MADE.fetch_add(1, Ordering::Relaxed);
        Counted(Vec::with_capacity(4))
    }
}
impl Drop for Counted {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

thread_local! {
    static LAZY: RefCell<Counted> = RefCell::new(Counted::new());
}

/// First touches of a lazily initialised thread-local, before and after
/// blocking calls, from GVThreads that hand-offs move between OS threads.
#[inline(never)]
fn lazy_across_yields(n: u64) {
    for i in 0..n {
        LAZY.with(|c| gvthread::no_preempt(|| c.borrow_mut().0.push(i)));
        gvthread::yield_now();
        LAZY.with(|c| {
            gvthread::no_preempt(|| {
                let mut c = c.borrow_mut();
                if c.0.len() > 32 {
                    c.0.clear();
                }
            })
        });
    }
}

#[test]
fn no_thread_local_value_is_dropped_twice() {
    let m = beside_a_hog(lazy_across_yields);
    // `beside_a_hog` dropped the runtime; its role threads went back to the
    // pool without exiting, so their values stay (and are never dropped).
    // Give a thread that would exit after all (the old design) time to run
    // its destructors.
    std::thread::sleep(Duration::from_millis(300));
    let (made, dropped) = (MADE.load(Ordering::Relaxed), DROPPED.load(Ordering::Relaxed));
    assert!(made >= 1, "the thread-local was never made");
    assert!(dropped <= made, "thread-local values were dropped more often ({dropped}) than made ({made}): {m:?}");
    assert!(m.forced_preemptions > 0, "the hogs were never preempted: the test proved nothing ({m:?})");
}
