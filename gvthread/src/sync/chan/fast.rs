//! The fast waiter: a lock-free registration for one blocked receiver of a
//! bounded or unbounded channel, so that a ping-pong message costs neither
//! side the channel's lock.
//!
//! # Protocol
//!
//! One word, [`FastWaiter::word`]: null (free), [`BUSY`] (someone is
//! registering or claiming), or the address of the registered receiver's
//! hand-off [`Slot`](super::handoff::Slot) on its stack. Beside it, the
//! registered GVThread (runtime, slot, generation) in two atomics, written
//! and read only by whoever holds `BUSY`.
//!
//! * **Register** (a GVThread about to block in `recv`, only when no other
//!   receiver is queued on the locked path): `null -> BUSY`, store who it is,
//!   then publish its slot's address (Release). Then a SeqCst fence and a
//!   look at the ring, the senders-gone flag and the put-back flag (values
//!   an unwinding receiver put back ahead of the ring, which only the locked
//!   path takes): if any changed, it withdraws and retries; otherwise it
//!   parks.
//! * **Claim** (a sender with a value for a waiting receiver, or a party
//!   with news for it: a value pushed into the ring, the last sender gone, a
//!   notification passed on): `slot address -> BUSY` (Acquire), read who it
//!   is, store null (anyone may register again), then **complete** it: write
//!   the value into the slot (`Slot::deliver`) or poke it (`Slot::poke`),
//!   and wake it. The claim turns the registration into a counted waiter
//!   where needed ([`GvPtr::waiter`]) before completing: once completed, the
//!   receiver may return and its GVThread end.
//! * **Withdraw** (the receiver, on a timeout, a spurious wake, or a change
//!   seen after registering): `slot address -> null`. If that fails, a claim
//!   got there first and its completion is on the way: the receiver waits
//!   for it (parks until its slot is filled or poked) and never leaves
//!   before, so the slot outlives every write into it.
//!
//! Why no wake is lost: a value enters the ring before its sender's SeqCst
//! fence and load of `word`; a registration is published before the
//! receiver's SeqCst fence and look at the ring (Dekker's pattern, as in
//! `ring`): the sender sees the registration and claims it, or the receiver
//! sees the value and does not park. The same holds for the senders-gone
//! flag. A sender that finds `BUSY` leaves it: either a registration is under
//! way (whose look at the ring will see the value) or another claimer is
//! completing the receiver (which then looks at the channel again or
//! returns a value, leaving ours for the next receive). A receiver queued on
//! the locked path is preferred by the locked paths, and every path that
//! notifies a receiver falls back on the fast waiter when none is queued,
//! so a notification passed on by a queued receiver that leaves reaches it.
//!
//! Holding `BUSY` is a few instructions inside a runtime section, so a
//! forced preemption never freezes a holder there (a frozen registrant would
//! only send others to the locked path; a frozen claimer would keep its
//! receiver waiting).

use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::runtime::shared::Shared;
use crate::sched::park::{GvPtr, Waiter};

/// The word while someone registers or claims (never a slot's address:
/// slots are aligned).
const BUSY: *mut () = ptr::without_provenance_mut(1);

/// A channel's fast-waiter registration (see the module docs).
pub(crate) struct FastWaiter {
    word: AtomicPtr<()>,
    /// The registered GVThread's runtime, and its slot and generation
    /// ([`GvPtr::to_parts`]); accessed only by the holder of `BUSY`.
    shared: AtomicPtr<Shared>,
    id: AtomicU64,
}

impl FastWaiter {
    pub(crate) const fn new() -> FastWaiter {
        FastWaiter {
            word: AtomicPtr::new(ptr::null_mut()),
            shared: AtomicPtr::new(ptr::null_mut()),
            id: AtomicU64::new(0),
        }
    }

    /// Registers `me`, blocked with hand-off slot `slot`. False if the
    /// registration is taken (the caller queues on the locked path). Call
    /// inside a runtime section, then fence and re-check (module docs).
    #[inline]
    pub(crate) fn register(&self, slot: NonNull<()>, me: GvPtr) -> bool {
        if self.word.compare_exchange(ptr::null_mut(), BUSY, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        let (shared, id) = me.to_parts();
        self.shared.store(shared, Ordering::Relaxed);
        self.id.store(id, Ordering::Relaxed);
        // Release: who we are is visible to the claimer that acquires this.
        self.word.store(slot.as_ptr(), Ordering::Release);
        true
    }

    /// Takes the caller's registration back. False: it was claimed, and
    /// its completion is on the way; the caller must wait for it.
    pub(crate) fn withdraw(&self, slot: NonNull<()>) -> bool {
        self.word.compare_exchange(slot.as_ptr(), ptr::null_mut(), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// Whether a receiver may be registered (a plain load, for fast paths
    /// that then claim).
    #[inline]
    pub(crate) fn maybe_waiting(&self) -> bool {
        let w = self.word.load(Ordering::Relaxed);
        !w.is_null() && w != BUSY
    }

    /// Claims the registered receiver, if any: its slot, and a waiter to
    /// wake once the caller has completed it (filled or poked the slot).
    /// Call inside a runtime section; the caller must complete what it
    /// claims.
    pub(crate) fn claim(&self) -> Option<(NonNull<()>, Waiter)> {
        self.claim_on(crate::sched::machine::current())
    }

    /// [`claim`](Self::claim) with the caller's machine already read
    /// (`machine::current()`, in the caller's runtime section).
    #[inline]
    pub(crate) fn claim_on(&self, here: Option<&crate::sched::machine::Machine>) -> Option<(NonNull<()>, Waiter)> {
        let (slot, who) = self.claim_gvthread()?;
        // SAFETY: the registered GVThread cannot leave its receive before we
        // complete it (it waits for that after a failed withdrawal), so it
        // has not ended, so its runtime is alive (see `GvPtr`).
        let waiter = unsafe { who.waiter_on(here) };
        Some((slot, waiter))
    }

    /// [`claim`](Self::claim) returning whom it claimed as a bare
    /// [`GvPtr`]: the caller must complete it and, before completing it,
    /// make it a waiter ([`GvPtr::waiter_on`]) unless it belongs to the
    /// caller's own runtime ([`GvPtr::is_near`]).
    #[inline]
    pub(crate) fn claim_gvthread(&self) -> Option<(NonNull<()>, GvPtr)> {
        let mut w = self.word.load(Ordering::Relaxed);
        loop {
            if w.is_null() || w == BUSY {
                return None;
            }
            // Acquire: the registrant's stores of who it is.
            match self.word.compare_exchange_weak(w, BUSY, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        let who = GvPtr::from_parts(self.shared.load(Ordering::Relaxed), self.id.load(Ordering::Relaxed));
        self.word.store(ptr::null_mut(), Ordering::Release);
        let who = who.expect("a registration names its runtime");
        // A registered word is a slot's address, never null.
        Some((NonNull::new(w).expect("registered slot"), who))
    }
}

/// Every interleaving of a registration against a claiming sender and the
/// receiver's withdrawal (loom). The slot is abstracted to its two
/// completion flags, the ring to one atomic; the GVThread identity is left
/// out (it travels under `BUSY`).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};
    use std::ptr;

    const BUSY: *mut () = ptr::without_provenance_mut(1);
    const SLOT: *mut () = ptr::without_provenance_mut(16);

    struct Model {
        word: AtomicPtr<()>,
        ring: AtomicUsize,
        poked: AtomicBool,
    }

    fn claim(m: &Model) -> bool {
        let mut w = m.word.load(Ordering::Relaxed);
        loop {
            if w.is_null() || w == BUSY {
                return false;
            }
            match m.word.compare_exchange(w, BUSY, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        m.word.store(ptr::null_mut(), Ordering::Release);
        true
    }

    /// A value pushed by a sender is seen by the receiver: by its re-check
    /// after registering, or through the poke of the sender's claim; and a
    /// receiver whose withdrawal fails always gets the claimer's completion.
    #[test]
    fn loom_fast_waiter_never_misses_a_value() {
        loom::model(|| {
            let m = Arc::new(Model {
                word: AtomicPtr::new(ptr::null_mut()),
                ring: AtomicUsize::new(0),
                poked: AtomicBool::new(false),
            });
            let sender = {
                let m = m.clone();
                loom::thread::spawn(move || {
                    m.ring.store(1, Ordering::Relaxed); // the push
                    fence(Ordering::SeqCst);
                    if claim(&m) {
                        m.poked.store(true, Ordering::Release);
                    }
                })
            };
            // The receiver registers (it found the ring empty before).
            let registered =
                m.word.compare_exchange(ptr::null_mut(), BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok();
            assert!(registered, "nobody else registers here");
            m.word.store(SLOT, Ordering::Release);
            fence(Ordering::SeqCst);
            let saw_value = if m.ring.load(Ordering::Relaxed) != 0 {
                // Changed meanwhile: withdraw, or wait for the claimer.
                if m.word.compare_exchange(SLOT, ptr::null_mut(), Ordering::Relaxed, Ordering::Relaxed).is_err() {
                    while !m.poked.load(Ordering::Acquire) {
                        loom::thread::yield_now();
                    }
                }
                true
            } else {
                // Parked until poked (the sender must claim us).
                while !m.poked.load(Ordering::Acquire) {
                    loom::thread::yield_now();
                }
                m.ring.load(Ordering::Relaxed) != 0
            };
            assert!(saw_value, "the pushed value is found");
            sender.join().unwrap();
        });
    }
}
