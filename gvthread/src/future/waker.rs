//! The `Waker`s of [`block_on`](super::block_on()).
//!
//! A `block_on` call uses two wakers:
//!
//! * a **borrowed** waker for the first poll. Its data pointer is a [`Probe`]
//!   on the caller's stack; building it costs nothing (no allocation, no
//!   reference count on the runtime's shared state). `wake_by_ref` only sets
//!   the probe's flag: the borrowed waker is reachable only through the
//!   `&Waker` of that one poll, so a wake through it happens before `block_on`
//!   looks at the flag and never needs to unpark anybody. `clone` is how a
//!   future keeps a waker past the poll: it creates the call's [`Signal`] (once,
//!   in the probe) and returns an owned waker for it.
//! * an **owned** waker, an `Arc<Signal>` behind [`OWNED`], used for every
//!   later poll. It is created once per `block_on` call (or taken over from the
//!   first clone), so futures that compare wakers with `Waker::will_wake` keep
//!   the clone they already have. It is `Send + Sync`, cheap to clone (one
//!   reference count), and may be woken from any thread, any number of times,
//!   at any time: after the GVThread ended or its slot was reused, the wake
//!   names a stale generation and the scheduler ignores it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{RawWaker, RawWakerVTable, Waker};
use std::thread::Thread;

use crate::runtime::shared::Shared;
use crate::sched::{machine, park};
use crate::task::state;

/// Who a `block_on` call parks, as captured when the call starts.
pub(crate) enum Parker {
    /// A GVThread: one incarnation of a slot of a runtime.
    ///
    /// `shared` is borrowed, not counted: the GVThread's stack lives in
    /// memory owned by `*shared`, so `*shared` is alive for as long as the
    /// `block_on` frame holding this value is.
    GvThread { shared: *const Shared, slot: u32, generation: u32 },
    /// A plain OS thread.
    Thread(Thread),
}

impl Parker {
    /// The caller.
    #[inline]
    pub(crate) fn current() -> Parker {
        match machine::current_gvthread() {
            Some((m, slot)) => {
                // Relaxed: our own state word; its generation was published
                // to this thread before we were scheduled.
                let generation = state::generation(m.shared.slots.state(slot).load(Ordering::Relaxed));
                Parker::GvThread { shared: Arc::as_ptr(&m.shared), slot, generation }
            }
            None => Parker::Thread(std::thread::current()),
        }
    }

    /// An owned equivalent, for wakers that may outlive the call.
    ///
    /// # Safety
    /// The `block_on` frame that captured `self` must still be running (see
    /// [`Parker::GvThread`]).
    unsafe fn to_target(&self) -> Target {
        match self {
            Parker::GvThread { shared, slot, generation } => {
                // `shared` came from `Arc::as_ptr` of an `Arc<Shared>`.
                // SAFETY: that `Shared` is alive (the caller's contract), so its
                // strong count is >= 1: one more reference + `from_raw` is sound.
                let shared = unsafe {
                    Arc::increment_strong_count(*shared);
                    Arc::from_raw(*shared)
                };
                Target::GvThread { shared, slot: *slot, generation: *generation }
            }
            Parker::Thread(t) => Target::Thread(t.clone()),
        }
    }
}

/// An owned reference to who a `block_on` call parks. The GVThread variant
/// behaves like `sched::park::GvRef` (which cannot be built from its parts
/// here): waking it after it ended or after its slot was reused is a no-op.
enum Target {
    GvThread { shared: Arc<Shared>, slot: u32, generation: u32 },
    Thread(Thread),
}

impl Target {
    fn wake(&self) {
        match self {
            Target::GvThread { shared, slot, generation } => {
                shared.wake(*slot, *generation);
            }
            Target::Thread(t) => t.unpark(),
        }
    }
}

/// The state of one `block_on` call that its owned wakers share.
pub(crate) struct Signal {
    /// Set by a wake, consumed by `block_on` before it polls again.
    woken: AtomicBool,
    target: Target,
}

impl Signal {
    fn new(target: Target, woken: bool) -> Signal {
        Signal { woken: AtomicBool::new(woken), target }
    }

    /// Records a wake and wakes the caller of `block_on` if it may be
    /// parked. Callable from any thread.
    fn notify(&self) {
        // AcqRel: Release publishes what the waker did before waking to the
        // poll that follows; only the false -> true transition wakes (a set
        // flag means a wake is already on its way or `block_on` is about to
        // poll anyway).
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.target.wake();
        }
    }

    /// Parks the caller until a wake was recorded, and consumes it. Called
    /// only by the `block_on` that owns this signal.
    pub(crate) fn wait(&self) {
        // Acquire: pairs with `notify`. `park` may return spuriously (for
        // example after a wake meant for a nested `block_on`): loop.
        while !self.woken.swap(false, Ordering::Acquire) {
            park::park();
        }
    }

    /// An owned waker for this signal.
    pub(crate) fn waker(self: &Arc<Self>) -> Waker {
        let data = Arc::into_raw(self.clone()).cast::<()>();
        // SAFETY: `data` is an owned `Arc<Signal>` reference, which is what
        // the functions of `OWNED` expect; they are thread-safe (`Signal` is
        // `Send + Sync`).
        unsafe { Waker::from_raw(RawWaker::new(data, &OWNED)) }
    }
}

/// Vtable of owned wakers: the data pointer is an `Arc<Signal>` reference.
static OWNED: RawWakerVTable = RawWakerVTable::new(owned_clone, owned_wake, owned_wake_by_ref, owned_drop);

unsafe fn owned_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live `Arc<Signal>` reference (the waker being
    // cloned holds it), so adding one is sound.
    unsafe { Arc::increment_strong_count(data.cast::<Signal>()) };
    RawWaker::new(data, &OWNED)
}

unsafe fn owned_wake(data: *const ()) {
    // SAFETY: waking by value consumes the waker's reference.
    let signal = unsafe { Arc::from_raw(data.cast::<Signal>()) };
    signal.notify();
}

unsafe fn owned_wake_by_ref(data: *const ()) {
    // SAFETY: the waker holds a reference, so the `Signal` is alive.
    unsafe { &*data.cast::<Signal>() }.notify();
}

unsafe fn owned_drop(data: *const ()) {
    // SAFETY: dropping the waker releases its reference.
    drop(unsafe { Arc::from_raw(data.cast::<Signal>()) });
}

/// The first poll's state, on the stack of `block_on`.
pub(crate) struct Probe {
    parker: Parker,
    /// Set by a wake through the borrowed waker.
    woken: AtomicBool,
    /// The call's `Signal`, if a clone of the borrowed waker created it.
    owned: OnceLock<Arc<Signal>>,
}

impl Probe {
    #[inline]
    pub(crate) fn new(parker: Parker) -> Probe {
        Probe { parker, woken: AtomicBool::new(false), owned: OnceLock::new() }
    }

    /// Runs `f` with the borrowed waker of this probe. The waker cannot
    /// outlive `f` (a clone is an owned waker).
    #[inline]
    pub(crate) fn with_waker<R>(&self, f: impl FnOnce(&Waker) -> R) -> R {
        let data = (self as *const Probe).cast::<()>();
        // The waker is dropped at the end of this function (its drop is a
        // no-op) and `f` sees only a reference to it, so every use of it
        // happens while `self` is borrowed. `BORROWED`'s functions are
        // thread-safe: they touch only atomics, a `OnceLock` and (read-only)
        // the parker, whose `Thread` is `Sync` and whose `Shared` is only read.
        // SAFETY: `BORROWED` expects a `Probe` alive while it runs: see above.
        let waker = unsafe { Waker::from_raw(RawWaker::new(data, &BORROWED)) };
        f(&waker)
    }

    /// Ends the first poll: the call's `Signal` (created now unless a clone
    /// already did), with any wake of the first poll carried over.
    ///
    /// Must be called by the `block_on` frame that captured the parker.
    pub(crate) fn into_signal(self) -> Arc<Signal> {
        let woken = self.woken.into_inner();
        match self.owned.into_inner() {
            Some(signal) => {
                if woken {
                    signal.woken.store(true, Ordering::Relaxed);
                }
                signal
            }
            // SAFETY: called by the `block_on` frame that captured the parker,
            // which is running.
            None => Arc::new(Signal::new(unsafe { self.parker.to_target() }, woken)),
        }
    }
}

/// Vtable of the borrowed waker: the data pointer is a `&Probe`.
static BORROWED: RawWakerVTable = RawWakerVTable::new(borrowed_clone, borrowed_wake, borrowed_wake, borrowed_drop);

unsafe fn borrowed_clone(data: *const ()) -> RawWaker {
    // SAFETY: the borrowed waker is used only while its probe is alive (see
    // `Probe::with_waker`).
    let probe = unsafe { &*data.cast::<Probe>() };
    let signal = probe.owned.get_or_init(|| {
        // SAFETY: the probe is alive, so the `block_on` frame owning it runs.
        Arc::new(Signal::new(unsafe { probe.parker.to_target() }, false))
    });
    RawWaker::new(Arc::into_raw(signal.clone()).cast(), &OWNED)
}

unsafe fn borrowed_wake(data: *const ()) {
    // SAFETY: as in `borrowed_clone`. Setting the flag is enough: `block_on`
    // reads it after the poll this waker belongs to, before it parks.
    unsafe { &*data.cast::<Probe>() }.woken.store(true, Ordering::Release);
}

unsafe fn borrowed_drop(_data: *const ()) {}
