//! Counted references to a join state, in place of `Arc`.
//!
//! A join state is shared by the [`JoinHandle`](crate::JoinHandle), the
//! slot's completion pointer and the GVThread's cancellation token (which
//! keeps its node there, see `sync::cancel`). The count lives in the
//! type-independent prefix (`JoinCore`), so a token can hold an erased
//! reference ([`CoreRef`]); the last reference runs the state's erased
//! operation (`JoinCore::op`, made for the right `T` at creation), which
//! drops the state and frees its memory: a recycled block of the freeing
//! role's cache when the state fits one (`memory::blocks`), the global
//! allocator otherwise. The counting follows `std::sync::Arc`: increments
//! are `Relaxed` (a reference is cloned from a live one), decrements
//! `Release`, and the last one `Acquire`s every other holder's accesses
//! before the state is dropped; the count is 32 bits wide, and an increment
//! past [`MAX_REFS`] aborts the process, as `Arc` does past `isize::MAX`
//! (only leaked token clones could get there). A new state starts counted
//! [`SPAWN_REFS`] times, for the three references a spawn makes
//! (`SpawnRefs`): no increment on the spawn path.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{self, Ordering};

use super::{CoreOp, JoinCore, JoinState};
use crate::memory::blocks::{self, BlockCache, BlockSize};
use crate::sched::machine;

/// A counted reference to a `JoinState<T>` (`Arc<JoinState<T>>`, in effect).
pub(crate) struct JoinRef<T> {
    ptr: NonNull<JoinState<T>>,
    _owns: PhantomData<JoinState<T>>,
}

// SAFETY: what `Arc<JoinState<T>>` would be: the state is `Send + Sync` when
// `T: Send` (see its impls), and the count is atomic.
unsafe impl<T: Send> Send for JoinRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for JoinRef<T> {}

// A pointer: moving it never moves the state.
impl<T> Unpin for JoinRef<T> {}

/// The count a new join state starts with: one per field of [`SpawnRefs`].
pub(super) const SPAWN_REFS: u32 = 3;

/// Counts past this abort the process (see the module docs).
const MAX_REFS: u32 = u32::MAX / 2;

/// Counts one more reference to `core`'s state (cloned from a live one).
fn add_ref(core: &JoinCore) {
    if core.refs.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
        // Like `Arc`: a count that could wrap would free a state in use.
        std::process::abort();
    }
}

/// The three references to a new GVThread's join state: its
/// [`JoinHandle`](crate::JoinHandle)'s, its slot's completion pointer's, and
/// its cancellation token's.
pub(crate) struct SpawnRefs<T> {
    pub(crate) handle: JoinRef<T>,
    pub(crate) completion: JoinRef<T>,
    pub(crate) token: CoreRef,
}

impl<T> JoinRef<T> {
    /// Moves `state` (whose count says [`SPAWN_REFS`]) to the heap, into a recycled
    /// block when it fits one, from `cache` if given, and returns its three
    /// references: one count written, not three atomic increments.
    ///
    /// # Safety
    /// If `cache` is given, the caller holds the role it belongs to, inside
    /// a runtime section.
    pub(super) unsafe fn new_for_spawn(state: JoinState<T>, cache: Option<&BlockCache>) -> SpawnRefs<T> {
        debug_assert_eq!(state.core.refs.load(Ordering::Relaxed), SPAWN_REFS);
        let layout = Layout::new::<JoinState<T>>();
        let p: NonNull<JoinState<T>> = if let Some(size) = BlockSize::for_layout(layout) {
            // SAFETY: forwarded from the caller.
            unsafe { blocks::allocate(size, cache) }.cast()
        } else {
            // SAFETY: a join state has a non-zero size.
            let p = unsafe { std::alloc::alloc(layout) };
            NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout)).cast()
        };
        // SAFETY: fresh memory, large and aligned enough for the state.
        unsafe { p.write(state) };
        SpawnRefs {
            handle: JoinRef { ptr: p, _owns: PhantomData },
            completion: JoinRef { ptr: p, _owns: PhantomData },
            token: CoreRef(p.cast()),
        }
    }

    /// Gives up the reference as a raw pointer (to `JoinCore`, its prefix).
    pub(crate) fn into_raw(this: JoinRef<T>) -> *mut () {
        let p = this.ptr.as_ptr().cast();
        std::mem::forget(this);
        p
    }

    /// Takes back a reference given up by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `p` comes from `into_raw` of a `JoinRef<T>` of this `T`, once.
    pub(crate) unsafe fn from_raw(p: *mut ()) -> JoinRef<T> {
        // SAFETY: non-null, by the caller's contract.
        JoinRef { ptr: unsafe { NonNull::new_unchecked(p.cast()) }, _owns: PhantomData }
    }

    /// Drops the state and frees its memory (the last reference is gone).
    ///
    /// # Safety
    /// `core` is the prefix of a `JoinState<T>` made by [`new_for_spawn`](Self::new_for_spawn)
    /// whose count reached zero.
    pub(super) unsafe fn release(core: NonNull<JoinCore>) {
        let p = core.cast::<JoinState<T>>();
        // SAFETY: no reference remains, so nobody else touches the state.
        unsafe { p.drop_in_place() };
        let layout = Layout::new::<JoinState<T>>();
        if let Some(size) = BlockSize::for_layout(layout) {
            free_block(p.cast(), size);
        } else {
            // SAFETY: allocated by `new_for_spawn` from the global allocator with `layout`.
            unsafe { std::alloc::dealloc(p.as_ptr().cast(), layout) };
        }
    }
}

/// Frees a block of `size` into the cache of the role the calling machine
/// holds, if any (any runtime's: blocks are interchangeable).
fn free_block(b: NonNull<u8>, size: BlockSize) {
    match machine::current() {
        Some(m) => {
            // A section: the role (and its cache) stays this machine's.
            m.enter();
            // SAFETY: a non-null role pointer targets a live `Worker`; we hold
            // the role, inside a section; `b` came from `blocks::allocate`.
            unsafe { blocks::free(b, size, m.worker_ptr().as_ref().map(|w| &w.join_blocks)) };
            m.leave();
        }
        // SAFETY: `b` came from `blocks::allocate`; no cache given.
        None => unsafe { blocks::free(b, size, None) },
    }
}

impl<T> Clone for JoinRef<T> {
    fn clone(&self) -> Self {
        add_ref(&self.core);
        JoinRef { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<T> Deref for JoinRef<T> {
    type Target = JoinState<T>;

    fn deref(&self) -> &JoinState<T> {
        // SAFETY: our reference keeps the state alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for JoinRef<T> {
    fn drop(&mut self) {
        // SAFETY: our reference is given up here, once.
        unsafe { drop_ref(self.ptr.cast()) }
    }
}

/// Gives up one reference; the last one releases the state.
///
/// # Safety
/// The caller owns one counted reference to `core`'s state and gives it up.
unsafe fn drop_ref(core: NonNull<JoinCore>) {
    // SAFETY: our reference keeps the state alive until the decrement.
    let c = unsafe { core.as_ref() };
    if c.refs.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    // Acquire: every other holder's accesses happen before the release.
    atomic::fence(Ordering::Acquire);
    let op = c.op;
    // SAFETY: the count reached zero; `op` was made for this state's T.
    unsafe { op(core, CoreOp::Release) }
}

/// An erased counted reference to a join state (held by the GVThread's
/// cancellation token).
pub(crate) struct CoreRef(NonNull<JoinCore>);

// SAFETY: through a `CoreRef` only the count and the token node (a
// `LazyNode`, `Send + Sync`) are touched, never the result, and the release
// function drops the state wherever the last reference goes, as an
// `Arc<JoinState<T>>` with `T: Send` would (every state is made by a spawn,
// which requires `T: Send`).
unsafe impl Send for CoreRef {}
// SAFETY: as above.
unsafe impl Sync for CoreRef {}

// Unwind safe: only the count and the token node (unwind safe itself) are
// touched through it.
impl std::panic::RefUnwindSafe for CoreRef {}
impl std::panic::UnwindSafe for CoreRef {}

impl CoreRef {
    /// The GVThread's token node to be.
    pub(crate) fn token(&self) -> &crate::sync::cancel::LazyNode {
        // SAFETY: our reference keeps the state alive.
        unsafe { &self.0.as_ref().token }
    }
}

impl Clone for CoreRef {
    fn clone(&self) -> Self {
        // SAFETY: our reference keeps the state alive.
        add_ref(unsafe { self.0.as_ref() });
        CoreRef(self.0)
    }
}

impl Drop for CoreRef {
    fn drop(&mut self) {
        // SAFETY: our reference is given up here, once.
        unsafe { drop_ref(self.0) }
    }
}
