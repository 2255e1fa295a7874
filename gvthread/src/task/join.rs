//! Join handles: waiting for a GVThread's result.
//!
//! A spawn allocates one `JoinState<T>`; the [`JoinHandle`] holds one
//! reference and the slot's completion pointer (in the slot pool) holds
//! another. Whoever swaps the completion pointer out of the pool owns that
//! reference and completes the join exactly once: the GVThread itself when it
//! ends, or the runtime when it abandons GVThreads at shutdown.
//!
//! # The joiner
//!
//! A GVThread of the same runtime waits through `gv_waiter`, one atomic word
//! holding its (slot, generation): registering is a store, completing is a
//! swap, and the wake goes through the completer's runtime (the joinee's,
//! which is the joiner's: the handle knows the joinee's runtime, and the
//! GVThread completing its own join runs on it), so no reference is cloned
//! or freed per join.
//! The joiner stores its word and then reads `status`; the completer stores
//! `status` and then swaps the word out; both pairs are `SeqCst`, so either
//! the joiner sees `DONE` or the completer sees the joiner (Dekker). Other
//! joiners (OS threads, async tasks, GVThreads of another runtime) use the
//! `waiter` slot under its lock (a box made by the first of them), and raise
//! `has_waiter` (SeqCst) before they read `status` (SeqCst): the completer
//! looks at `waiter` only when it sees the flag after storing `DONE`, so an
//! exit nobody waits for by those means (the common case) takes no lock and
//! no box.
//!
//! # Size
//!
//! Every spawn makes a join state and a burst may keep a million of them,
//! so the state of a small result fits one 64-byte block
//! (`memory::blocks`): a 32-bit count with the three flags beside it, no
//! runtime pointer (the handle keeps it), one function for both erased
//! operations, the waiter slot out of line, and a two-word token node.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use super::id::GVThreadId;
use crate::memory::blocks::BlockCache;
use crate::runtime::shared::Shared;
use crate::sched::park::{self, Waiter};
use crate::sync::cancel::LazyNode;
use crate::util::lazy_box::LazyBox;

mod refs;
pub(crate) use refs::{CoreRef, JoinRef, SpawnRefs};

const PENDING: u8 = 0;
const DONE: u8 = 1;
const TAKEN: u8 = 2;

// The join states of the common results fit a recycled block: one spawn,
// no trip to the C allocator (`memory::blocks`); none, a word or a pointer
// in a small one (one cache line's worth), a `String` or `Vec` in a large one.
const _: () = {
    use crate::memory::blocks::BlockSize;
    use std::alloc::Layout;
    const fn size_for<T>() -> Option<BlockSize> {
        BlockSize::for_layout(Layout::new::<JoinState<T>>())
    }
    assert!(matches!(size_for::<()>(), Some(BlockSize::Small)));
    assert!(matches!(size_for::<u64>(), Some(BlockSize::Small)));
    assert!(matches!(size_for::<Box<u8>>(), Some(BlockSize::Small)));
    assert!(matches!(size_for::<String>(), Some(BlockSize::Large)));
    assert!(std::mem::size_of::<JoinCore>() == 48);
    assert!(std::mem::size_of::<JoinError>() == std::mem::size_of::<usize>());
};

/// A runtime's identity: the address of its shared state, compared and
/// never dereferenced (a plain integer, so a handle stays `Send` and
/// `Sync`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct RuntimeAddr(usize);

impl RuntimeAddr {
    fn of(shared: &Shared) -> RuntimeAddr {
        RuntimeAddr(std::ptr::from_ref(shared) as usize)
    }
}

/// What the erased operation of a join state does (see `JoinCore::op`).
#[derive(Clone, Copy)]
pub(crate) enum CoreOp {
    /// The last reference is gone: drop the state and free its memory.
    Release,
    /// Complete the join with `JoinError::Cancelled` and drop the owned
    /// completion reference (shutdown abandons the GVThread).
    Abandon,
}

/// The type-independent prefix of a `JoinState<T>` (`repr(Rust)`: the
/// compiler packs the count and the flags into one word, which keeps the
/// state of a small `T` within one 64-byte block, see "Size").
pub(crate) struct JoinCore {
    /// References held (see `refs`).
    refs: AtomicU32,
    status: AtomicU8,
    /// Set once a waiter was stored in `waiter` (see the module docs).
    has_waiter: AtomicBool,
    /// Set when the JoinHandle is dropped unjoined: whoever of the handle
    /// and the completer sees `DONE` with this set drops the result (a
    /// `DONE` to `TAKEN` exchange decides), so a token clone that keeps
    /// the state alive does not keep the result too.
    detached: AtomicBool,
    /// A joining GVThread of the joinee's runtime: `slot << 32 | generation`
    /// (0: none; generations are never 0).
    gv_waiter: AtomicU64,
    /// The erased operations, made for the right `T` at creation.
    op: unsafe fn(NonNull<JoinCore>, CoreOp),
    /// Other joiners' slot, boxed by the first of them (see the module
    /// docs).
    waiter: LazyBox<Mutex<Option<Waiter>>>,
    /// The GVThread's cancellation token's node, made on first need.
    token: LazyNode,
}

impl JoinCore {
    /// Completes the join with `JoinError::Cancelled` and drops the reference.
    ///
    /// # Safety
    /// `p` must be an owned reference obtained from `JoinState::<T>::into_completion`.
    pub(crate) unsafe fn abandon(p: *const JoinCore) {
        // SAFETY: `p` points at a live JoinCore by the caller's contract; the
        // function pointer was set for the right `T` at creation.
        unsafe { ((*p).op)(NonNull::new_unchecked(p.cast_mut()), CoreOp::Abandon) }
    }

    /// The slot of joiners that are not GVThreads of the joinee's runtime,
    /// boxed by the first of them.
    fn waiter_slot(&self) -> &Mutex<Option<Waiter>> {
        self.waiter.get_or_make(|| Mutex::new(None))
    }

    fn is_done(&self) -> bool {
        self.status.load(Ordering::Acquire) != PENDING
    }

    /// Registers the calling GVThread if it belongs to `runtime`, the
    /// joinee's (the atomic path, see the module docs); false otherwise.
    fn register_gvthread(&self, runtime: RuntimeAddr) -> bool {
        let Some((m, slot)) = crate::sched::machine::current_gvthread() else { return false };
        if RuntimeAddr::of(&m.shared) != runtime {
            return false;
        }
        let generation = crate::task::state::generation(m.shared.slots.state(slot).load(Ordering::Relaxed));
        self.gv_waiter.store(u64::from(slot) << 32 | u64::from(generation), Ordering::SeqCst);
        true
    }

    /// Wakes the joiner registered in `gv_waiter`, if any. Called by the
    /// completer after publishing `DONE`: the GVThread itself at its exit
    /// (`own_exit`: it runs on a machine of its runtime, where any
    /// `gv_waiter` belongs), or shutdown, whose joiners of this runtime are
    /// being unwound anyway.
    fn wake_gvthread(&self, own_exit: bool) {
        let w = self.gv_waiter.swap(0, Ordering::SeqCst);
        if w == 0 || !own_exit {
            return;
        }
        if let Some(m) = crate::sched::machine::current() {
            // With our machine: a joiner bound to our role goes to its
            // `runnext` by the inline path.
            m.shared.wake_from((w >> 32) as u32, w as u32, Some(m));
        }
    }

    /// Registers `w` to be woken at completion (replacing an older waiter).
    fn register(&self, w: Waiter) {
        // The replaced waiter (if any) is dropped outside the section.
        let slot = self.waiter_slot();
        let _old = crate::sched::machine::in_section(|| {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            let old = match &*slot {
                Some(old) if old.same(&w) => None,
                _ => slot.replace(w),
            };
            // SeqCst, before the caller reads `status` (module docs).
            self.has_waiter.store(true, Ordering::SeqCst);
            old
        });
    }
}

/// Shared between a [`JoinHandle`] and the GVThread it joins.
#[repr(C)]
pub(crate) struct JoinState<T> {
    core: JoinCore,
    result: UnsafeCell<Option<Result<T, JoinError>>>,
}

// SAFETY: `result` is written once by the completer (the unique owner of the
// completion reference) before `status` is set with Release, and read only by
// the JoinHandle's owner after observing it with Acquire; T: Send is enough
// for the value to move between threads that way.
unsafe impl<T: Send> Sync for JoinState<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for JoinState<T> {}

impl<T> JoinState<T> {
    /// A join state for a GVThread whose token node to be is `token`, in a
    /// block of `cache` when it fits one, and its three references (handle,
    /// completion, token).
    ///
    /// # Safety
    /// If `cache` is given, the caller holds the role it belongs to, inside
    /// a runtime section.
    pub(crate) unsafe fn create(token: LazyNode, cache: Option<&BlockCache>) -> SpawnRefs<T> {
        let state = JoinState {
            core: JoinCore {
                refs: AtomicU32::new(refs::SPAWN_REFS),
                status: AtomicU8::new(PENDING),
                has_waiter: AtomicBool::new(false),
                detached: AtomicBool::new(false),
                gv_waiter: AtomicU64::new(0),
                op: Self::op_erased,
                waiter: LazyBox::new(),
                token,
            },
            result: UnsafeCell::new(None),
        };
        // SAFETY: forwarded from the caller.
        unsafe { JoinRef::new_for_spawn(state, cache) }
    }

    /// A type-erased owned reference for the slot's completion pointer.
    pub(crate) fn into_completion(this: JoinRef<T>) -> *mut () {
        JoinRef::into_raw(this)
    }

    /// Takes back a reference made by `into_completion`.
    ///
    /// # Safety
    /// `p` must come from `into_completion` for this `T`, and be used once.
    pub(crate) unsafe fn from_completion(p: *mut ()) -> JoinRef<T> {
        // SAFETY: by the caller's contract `p` came from `JoinRef::into_raw`.
        unsafe { JoinRef::from_raw(p) }
    }

    /// Stores the result and wakes the joiner. Called once, by the owner of
    /// the completion reference: the GVThread at its exit (`own_exit`), or
    /// shutdown.
    pub(crate) fn complete(this: JoinRef<T>, result: Result<T, JoinError>, own_exit: bool) {
        // SAFETY: only the completer writes `result`, once, before publishing
        // DONE; the reader waits for DONE.
        unsafe { *this.result.get() = Some(result) };
        // SeqCst: pairs with the joiner's store of `gv_waiter` (module docs).
        this.core.status.store(DONE, Ordering::SeqCst);
        this.core.wake_gvthread(own_exit);
        // SeqCst: pairs with `register`'s store of `has_waiter`, made after
        // the slot was boxed (so this finds the box, and boxes nothing).
        if this.core.has_waiter.load(Ordering::SeqCst) {
            let slot = this.core.waiter_slot();
            let w = crate::sched::machine::in_section(|| slot.lock().unwrap_or_else(|e| e.into_inner()).take());
            if let Some(w) = w {
                w.wake();
            }
        }
        // SeqCst: pairs with the handle's drop (see `detached`).
        if this.core.detached.load(Ordering::SeqCst) {
            this.drop_result();
        }
    }

    /// Drops the result unless the other side (handle or completer) did.
    fn drop_result(&self) {
        if self.core.status.compare_exchange(DONE, TAKEN, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            // SAFETY: DONE was observed with Acquire, so the completer's
            // write is finished and visible; winning the exchange makes us
            // the only one to touch `result` from now on.
            drop(unsafe { (*self.result.get()).take() });
        }
    }

    /// The erased operations (`JoinCore::op`).
    ///
    /// # Safety
    /// `core` is the `core` field (at offset 0 of the `#[repr(C)]` state) of
    /// a `JoinState<T>` of this `T`. `Release`: its count reached zero.
    /// `Abandon`: the caller owns its completion reference and gives it up.
    unsafe fn op_erased(core: NonNull<JoinCore>, op: CoreOp) {
        match op {
            // SAFETY: forwarded from the caller.
            CoreOp::Release => unsafe { JoinRef::<T>::release(core) },
            CoreOp::Abandon => {
                // SAFETY: forwarded from the caller.
                let this = unsafe { Self::from_completion(core.as_ptr().cast()) };
                Self::complete(this, Err(JoinError::cancelled()), false);
            }
        }
    }
}

/// An owned permission to wait for a GVThread and take its result.
///
/// Dropping it detaches the GVThread (it keeps running). `JoinHandle` is also
/// a [`Future`], so async code on any executor can await a GVThread without
/// blocking its executor thread.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
/// rt.block_on(|| {
///     let h = gvthread::spawn(|_token| "hello from a GVThread".len());
///     assert_eq!(h.join().unwrap(), 21);
///
///     let bad = gvthread::spawn(|_| -> u32 { panic!("boom") });
///     assert!(bad.join().unwrap_err().is_panic());
/// });
/// ```
pub struct JoinHandle<T> {
    state: JoinRef<T>,
    id: GVThreadId,
    /// The joinee's runtime (see the module docs).
    runtime: RuntimeAddr,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: JoinRef<T>, id: GVThreadId, runtime: &Shared) -> JoinHandle<T> {
        JoinHandle { state, id, runtime: RuntimeAddr::of(runtime) }
    }

    /// Waits for the GVThread to end and returns its result; `Err` if it
    /// panicked or was abandoned at runtime shutdown. Parks: inside a
    /// GVThread only that GVThread waits.
    pub fn join(mut self) -> Result<T, JoinError> {
        assert!(
            self.state.core.status.load(Ordering::Acquire) != TAKEN,
            "JoinHandle::join called after the JoinHandle was awaited to completion"
        );
        loop {
            if let Some(r) = self.try_take() {
                return r;
            }
            if !self.state.core.register_gvthread(self.runtime) {
                self.state.core.register(Waiter::current());
            }
            // SeqCst: pairs with the completer's store of DONE.
            if self.state.core.status.load(Ordering::SeqCst) != PENDING {
                continue;
            }
            park::park_for_join(self.id);
        }
    }

    /// The id of the GVThread.
    pub fn id(&self) -> GVThreadId {
        self.id
    }

    /// Cancels the GVThread's [`CancellationToken`](crate::CancellationToken) (and so its descendants').
    /// Cancellation is cooperative: the GVThread sees it through its token.
    pub fn cancel(&self) {
        self.state.core.token.cancel();
    }

    /// Whether the GVThread has ended (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.state.core.is_done()
    }

    fn try_take(&mut self) -> Option<Result<T, JoinError>> {
        let core = &self.state.core;
        if core.status.load(Ordering::Acquire) != DONE {
            return None;
        }
        core.status.store(TAKEN, Ordering::Relaxed);
        // SAFETY: DONE was observed with Acquire, so the completer's write is
        // visible and finished; `&mut self` makes us the only reader, and
        // TAKEN keeps us from reading twice.
        unsafe { (*self.state.result.get()).take() }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let core = &self.state.core;
        // Joined (the common case): nothing left here.
        if core.status.load(Ordering::Relaxed) == TAKEN {
            return;
        }
        // SeqCst: pairs with the completer's store of DONE (see `detached`).
        core.detached.store(true, Ordering::SeqCst);
        if core.status.load(Ordering::SeqCst) == DONE {
            self.state.drop_result();
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.state.core.status.load(Ordering::Acquire) == TAKEN {
            panic!("JoinHandle polled after it returned Ready");
        }
        if let Some(r) = self.try_take() {
            return Poll::Ready(r);
        }
        self.state.core.register(Waiter::Task(cx.waker().clone()));
        // SeqCst: pairs with the completer's load of `has_waiter`.
        if self.state.core.status.load(Ordering::SeqCst) == PENDING {
            return Poll::Pending;
        }
        match self.try_take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).field("finished", &self.is_finished()).finish()
    }
}

/// Why [`JoinHandle::join`] returned no value.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    /// The GVThread panicked. Boxed: a join state holds a
    /// `Result<T, JoinError>`, and a pointer-sized error keeps the state of
    /// a small `T` in one 128-byte block (`memory::blocks`).
    Panic(Box<Panicked>),
    /// The runtime shut down before the GVThread finished.
    Cancelled,
}

/// What a panic left: its message, the GVThread's name, and the payload,
/// kept for `into_panic`.
struct Panicked {
    message: Option<String>,
    name: Option<String>,
    payload: Mutex<Box<dyn Any + Send + 'static>>,
}

impl JoinError {
    /// A panic of a GVThread that has a name (see [`Builder::name`](crate::Builder::name)).
    pub(crate) fn panic_named(payload: Box<dyn Any + Send + 'static>, name: Option<String>) -> JoinError {
        let message = payload
            .downcast_ref::<&'static str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        JoinError { repr: Repr::Panic(Box::new(Panicked { message, name, payload: Mutex::new(payload) })) }
    }

    /// The name of the GVThread that panicked, if it had one.
    pub fn name(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panic(p) => p.name.as_deref(),
            Repr::Cancelled => None,
        }
    }

    pub(crate) fn cancelled() -> JoinError {
        JoinError { repr: Repr::Cancelled }
    }

    /// Whether the GVThread panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// Whether the GVThread was ended by its runtime's shutdown: unwound out
    /// of a blocking call (its destructors ran) when shutdown began while it
    /// was parked, or abandoned because it was still alive at the shutdown
    /// deadline.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The panic payload, to pass to `std::panic::resume_unwind`.
    ///
    /// # Panics
    /// If the error is not a panic (check [`is_panic`](Self::is_panic), or use
    /// [`try_into_panic`](Self::try_into_panic)).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().expect("JoinError::into_panic called on an error that is not a panic")
    }

    /// The panic payload, or the error itself if it is not a panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.payload.into_inner().unwrap_or_else(|e| e.into_inner())),
            repr => Err(JoinError { repr }),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic(p) => match &p.name {
                None => f.debug_tuple("JoinError::Panic").field(&p.message).finish(),
                Some(n) => f.debug_tuple("JoinError::Panic").field(&p.message).field(n).finish(),
            },
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic(p) => {
                f.write_str("GVThread ")?;
                if let Some(n) = &p.name {
                    write!(f, "'{n}' ")?;
                }
                match &p.message {
                    Some(m) => write!(f, "panicked: {m}"),
                    None => f.write_str("panicked"),
                }
            }
            Repr::Cancelled => write!(f, "GVThread cancelled: its runtime shut down before it finished"),
        }
    }
}

impl std::error::Error for JoinError {}
