//! The state word a select waits on: who won the round.
//!
//! A select round starts `WAITING` (the context is reset only while it is
//! registered nowhere). Every party that could complete the round (a
//! channel popping one of the select's entries, a cancelled token, the
//! select itself giving up on a deadline or because an arm became ready while
//! it was registering) races for it with one compare-and-swap from
//! `WAITING`; exactly one succeeds:
//!
//! * a waker that wins records its arm (`arm + 1`) and wakes the select;
//! * the select that wins records `ABORTED` and goes back to trying its arms
//!   itself (or returns a timeout).
//!
//! Orderings: the CAS is AcqRel and the select reads the word with Acquire,
//! so what the winner wrote before claiming (under its queue's lock) is
//! visible to the select; the data itself is protected by the channels'
//! locks anyway, so these orderings are belt and braces.

use std::sync::atomic::Ordering;

use crate::loom::AtomicUsize;
use crate::sync::waitq::WaitRef;

const WAITING: usize = 0;
const ABORTED: usize = usize::MAX;

/// One select's rendezvous point with its wakers (see the module docs).
///
/// Not part of the API: it appears in the signatures used by the expansion
/// of [`select!`](crate::select).
#[doc(hidden)]
pub struct SelectCtx {
    state: AtomicUsize,
    /// The select's party, uncounted when it is a GVThread (see `waitq`).
    waiter: WaitRef,
}

impl SelectCtx {
    /// A context for the calling GVThread (or OS thread), `WAITING`.
    pub(crate) fn new() -> SelectCtx {
        SelectCtx { state: AtomicUsize::new(WAITING), waiter: WaitRef::current() }
    }

    /// Starts a new round. Only while no queue holds an entry of `self`.
    pub(crate) fn reset(&mut self) {
        // Relaxed: `&mut self` means no waker can reach the context now.
        self.state.store(WAITING, Ordering::Relaxed);
    }

    /// Claims the round for `arm`; false if it was already decided.
    pub(crate) fn try_select(&self, arm: usize) -> bool {
        // AcqRel: see the module docs.
        self.state.compare_exchange(WAITING, arm + 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The select gives up the round itself: `Ok` if nobody had claimed it
    /// yet, else the arm that was claimed.
    pub(crate) fn abort(&self) -> Result<(), usize> {
        match self.state.compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Ok(()),
            Err(s) => Err(s - 1),
        }
    }

    /// The arm that won the round, if a waker claimed it.
    pub(crate) fn selected(&self) -> Option<usize> {
        // Acquire: pairs with the claimer's CAS.
        match self.state.load(Ordering::Acquire) {
            WAITING | ABORTED => None,
            s => Some(s - 1),
        }
    }

    /// Who to wake when the round is claimed (turned into a waiter under
    /// the claiming queue's lock, see `waitq`).
    pub(crate) fn waiter(&self) -> &WaitRef {
        &self.waiter
    }
}

/// Every interleaving of two wakers and the select's own abort racing for
/// one round (loom).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize as Count;

    /// Exactly one party decides the round, and everyone agrees on who.
    #[test]
    fn loom_select_round_has_one_winner() {
        loom::model(|| {
            let ctx = Arc::new(SelectCtx::new());
            let wins = Arc::new(Count::new(0));
            let wakers: Vec<_> = (0..2)
                .map(|arm| {
                    let (ctx, wins) = (ctx.clone(), wins.clone());
                    loom::thread::spawn(move || {
                        if ctx.try_select(arm) {
                            wins.fetch_add(1, Ordering::SeqCst);
                            Some(arm)
                        } else {
                            None
                        }
                    })
                })
                .collect();
            let aborted = ctx.abort();
            let claimed: Vec<_> = wakers.into_iter().filter_map(|w| w.join().unwrap()).collect();
            match aborted {
                Ok(()) => assert!(claimed.is_empty() && ctx.selected().is_none()),
                Err(arm) => assert_eq!((claimed.as_slice(), ctx.selected()), (&[arm][..], Some(arm))),
            }
            assert_eq!(wins.load(Ordering::SeqCst) + aborted.is_ok() as usize, 1);
        });
    }
}
