//! Direct hand-off to a blocked receiver (Go's `send` to a waiting
//! receiver): the value skips the buffer and the receiver does not take the
//! channel's lock again once woken.
//!
//! # Protocol
//!
//! A blocking receive owns a [`Slot`] on its stack and registers it with its
//! wait-queue entry (`WaitQueue::push_slot`). A sender that pops that entry
//! (under the channel's lock, when no value is buffered ahead of it, so FIFO
//! order holds) writes the value into the slot and then sets `full` with
//! Release; it never touches the slot again. The receiver, after every
//! return from `park`, loads `full` with Acquire: once it is set, the value
//! is its own and it returns without locking. Until then only the popper may
//! write the value, and only the owner reads it after seeing `full`, so the
//! `UnsafeCell` is never accessed by two parties at once.
//!
//! The slot outlives the entry: the owner removes its entry (or finds it
//! popped) under the lock before the slot goes out of scope, and a popper
//! fills it while still holding that lock. A receiver that leaves with a
//! filled slot (it unwinds out of `park` at shutdown) puts the value back at
//! the front of the channel, so nothing is lost.
//!
//! # Compacted receivers
//!
//! A receiver parked long enough may have its stack compacted (see
//! `memory::compact`): the slot's bytes then live in a heap buffer until the
//! GVThread is resumed. So the popper fills through [`Slot::deliver`], which
//! holds the receiver's stack (its `COMPACTING` bit, when compaction is on)
//! and writes wherever the slot's bytes are now: in place, or into their
//! copy, which the restorer puts back before the receiver runs and reads
//! `full`. Holding the stack also keeps a compaction from starting between
//! the fill and the wake (a write it would miss). The copy keeps the slot's
//! alignment modulo 16 only, so the receivers of values aligned beyond 16
//! bytes keep their stack exposed instead ([`Slot::MOVABLE`]).

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::loom::{AtomicBool, UnsafeCell};
use crate::memory::StackAt;
use crate::runtime::shared::Shared;
use crate::sched::park::Waiter;

/// A blocked receiver's hand-off slot (see the module docs).
pub(crate) struct Slot<T> {
    full: AtomicBool,
    /// Set by a sender that claimed the slot's fast registration without a
    /// value for it (see `fast`): "look at the channel again".
    poked: AtomicBool,
    value: UnsafeCell<Option<T>>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Slot<T> {
        Slot { full: AtomicBool::new(false), poked: AtomicBool::new(false), value: UnsafeCell::new(None) }
    }

    /// Whether a copy of the slot made by stack compaction is still a valid
    /// `Slot<T>` (see the module docs); if not, the receiver must keep its
    /// stack exposed (uncompactable) while it waits.
    pub(crate) const MOVABLE: bool = align_of::<Slot<T>>() <= 16;

    /// The address registered with the wait-queue entry.
    pub(crate) fn as_ptr(&self) -> NonNull<()> {
        NonNull::from(self).cast()
    }

    /// Delivers `v` into the slot at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` comes from [`as_ptr`](Self::as_ptr) of a `Slot<T>` whose entry
    /// the caller just popped, still holding the lock of that entry's queue.
    pub(crate) unsafe fn fill(ptr: NonNull<()>, v: T) {
        // SAFETY: the caller guarantees a live `Slot<T>` (its owner cannot
        // leave while we hold the lock); until `full` is set we are its only
        // user.
        let slot = unsafe { ptr.cast::<Slot<T>>().as_ref() };
        // SAFETY: as above: nobody else reads or writes the value now.
        slot.value.with_mut(|p| unsafe { *p = Some(v) });
        // Release: publishes the value to the owner's Acquire load.
        slot.full.store(true, Ordering::Release);
    }

    /// Delivers `v` into the slot at `ptr`, owned by `to`, wherever the
    /// slot's bytes are now (see "Compacted receivers").
    ///
    /// # Safety
    ///
    /// As for [`fill`](Self::fill), and `to` is the waiter of the entry the
    /// slot was registered with.
    #[inline]
    pub(crate) unsafe fn deliver(ptr: NonNull<()>, v: T, to: &Waiter) {
        match to.gvthread() {
            // SAFETY: the caller's contract.
            Some((shared, slot)) => unsafe { Self::deliver_to(ptr, v, shared, slot) },
            // SAFETY: the caller's contract; an OS thread's stack is never
            // compacted.
            None => unsafe { Self::fill(ptr, v) },
        }
    }

    /// [`deliver`](Self::deliver) to a slot on the stack of GVThread `slot`
    /// of runtime `shared`.
    ///
    /// # Safety
    ///
    /// As for [`fill`](Self::fill), and the slot at `ptr` is on the stack of
    /// that GVThread, which registered it.
    #[inline]
    pub(crate) unsafe fn deliver_to(ptr: NonNull<()>, v: T, shared: &Shared, slot: u32) {
        shared.slots.with_stack_held(slot, ptr.as_ptr().addr(), size_of::<Slot<T>>(), |at| match at {
            // SAFETY: the caller's contract; the stack stays in place while held.
            StackAt::Live => unsafe { Self::fill(ptr, v) },
            StackAt::Saved(p) => {
                debug_assert!(Self::MOVABLE, "a receiver of over-aligned values was compacted");
                // SAFETY: `p` is the (aligned: `MOVABLE`) copy of the empty
                // slot at `ptr`; while we hold the stack nobody else uses it.
                unsafe { Self::fill(NonNull::new_unchecked(p).cast(), v) }
            }
        })
    }

    /// Pokes the slot at `ptr`, owned by `to`, wherever its bytes are now:
    /// its owner, claimed through its fast registration, is to look at the
    /// channel again (see `fast`).
    ///
    /// # Safety
    ///
    /// `ptr` comes from [`as_ptr`](Self::as_ptr) of a `Slot<T>` whose fast
    /// registration the caller just claimed (so its owner waits for this),
    /// and `to` is that registration's waiter.
    pub(crate) unsafe fn poke(ptr: NonNull<()>, to: &Waiter) {
        let set = |p: NonNull<()>| {
            // SAFETY: a live `Slot<T>` (in place, or its saved copy, see
            // `deliver`); `poked` is an atomic.
            let slot = unsafe { p.cast::<Slot<T>>().as_ref() };
            // Release: our claim happened before the owner sees this.
            slot.poked.store(true, Ordering::Release);
        };
        match to.gvthread() {
            Some((shared, slot)) => {
                shared.slots.with_stack_held(slot, ptr.as_ptr().addr(), size_of::<Slot<T>>(), |at| match at {
                    StackAt::Live => set(ptr),
                    // SAFETY: `p` is the saved copy of the slot (see `deliver`).
                    StackAt::Saved(p) => set(unsafe { NonNull::new_unchecked(p).cast() }),
                })
            }
            None => set(ptr),
        }
    }

    /// Whether the slot was poked since the last call (owner only).
    pub(crate) fn take_poke(&self) -> bool {
        // Acquire: pairs with `poke`'s Release.
        self.poked.load(Ordering::Acquire) && {
            self.poked.store(false, Ordering::Relaxed);
            true
        }
    }

    /// The delivered value, if any (owner only).
    pub(crate) fn take(&self) -> Option<T> {
        // Acquire: pairs with `fill`'s Release.
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        self.full.store(false, Ordering::Relaxed);
        // SAFETY: `full` was set, so the filler is done with the slot and
        // only we (its owner) access it.
        self.value.with_mut(|p| unsafe { (*p).take() })
    }
}

/// Every interleaving of a fill against the owner polling (loom).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// The owner sees the value exactly once, and loom's cell checks that
    /// filler and owner never touch it at the same time.
    #[test]
    fn loom_handoff_fill_then_take() {
        loom::model(|| {
            let slot = Arc::new(Slot::<u32>::new());
            let filler = {
                let slot = slot.clone();
                loom::thread::spawn(move || {
                    // SAFETY: a live `Slot<u32>`; this thread is its only
                    // filler (it stands for the popper holding the lock).
                    unsafe { Slot::<u32>::fill(slot.as_ptr(), 7) }
                })
            };
            let got = loop {
                if let Some(v) = slot.take() {
                    break v;
                }
                loom::thread::yield_now();
            };
            assert_eq!(got, 7);
            filler.join().unwrap();
            assert_eq!(slot.take(), None, "taken once");
        });
    }
}
