//! `select`: wait on several channel operations (and cancellation tokens) at
//! once, and complete exactly one of them.
//!
//! # Protocol
//!
//! Each operation is an *arm* ([`SelectArm`]): a receive, a send (with its
//! value), or a token's cancellation. A select runs rounds:
//!
//! 1. **Try pass.** Visit the arms in a fresh random order and try each
//!    without waiting; the first that completes wins. Random order is what
//!    makes selection fair among ready arms (Go's rule).
//! 2. Non-blocking select (a `default` arm) or an expired deadline: return
//!    "nothing ready".
//! 3. **Register.** Reset the round's [`SelectCtx`] and put one entry per
//!    arm into the wait queue that arm needs (receivers' queue, senders'
//!    queue, the token's waiters). Registering re-checks the arm under the
//!    queue's lock: if it became ready meanwhile, stop registering and abort
//!    the round (step 5 with no winner), since a wake for it may already have
//!    been spent.
//! 4. **Park** until the context is claimed: a waker pops one of our entries
//!    and wins the context's CAS for that arm (see `waitq`). Exactly one
//!    claim per round can succeed; losers' entries are skipped by poppers,
//!    so a notification never goes to a select that will not use it.
//!    A deadline makes the select race its own wakers with `abort`.
//! 5. **Unregister** every arm (under each queue's lock), then complete the
//!    winning arm with a non-blocking attempt. If that attempt fails (another
//!    receiver took the value first, as with any notified waiter), start a
//!    new round.
//!
//! **No lost message**: an arm that loses never took anything (values only
//! move in step 1 and step 5, for one arm). A waker that claimed us spent
//! one notification, and we use it on that arm in step 5; if we leave
//! without trying it (an unwind out of `park` at shutdown), the drop guard
//! passes it on like a plain waiter would.
//!
//! **No lost wake**: each registration happens under the same lock as the
//! state changes of its queue, and re-checks readiness there; a state change
//! after it pops our entry. Claims are CASes, and the wake goes through
//! [`Waiter::wake`](crate::sched::park::Waiter), which keeps a wake that
//! arrives before the park.
//!
//! The select's own entries never pair with each other (a select that both
//! sends and receives on one rendezvous channel waits for someone else),
//! as in Go.

mod builder;
mod ctx;
pub(crate) mod macros;

pub use builder::{Select, SelectTimeoutError, SelectedOperation, TrySelectError};
pub use ctx::SelectCtx;

use std::cell::Cell;
use std::time::Instant;

use crate::sched::park;

/// One operation of a select (see the module docs). Not part of the API:
/// used by the expansion of [`select!`](crate::select).
#[doc(hidden)]
pub trait SelectArm {
    /// Tries to complete the operation without waiting; true when it did
    /// (the result is stored in the arm).
    fn try_complete(&mut self) -> bool;
    /// Registers `ctx` for arm number `arm`; false (and not registered) if
    /// the operation can proceed right now.
    fn register(&mut self, ctx: &SelectCtx, arm: usize) -> bool;
    /// Removes the registration, if any. `pass_on`: the round was claimed for
    /// this arm and the select leaves without completing it, so the
    /// notification goes to the next waiter.
    fn unregister(&mut self, pass_on: bool);
}

/// How long a select may wait.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Until an arm completes.
    Block,
    /// Not at all (a `default` arm).
    NonBlocking,
    /// Until the deadline; `None` means forever.
    Deadline(Option<Instant>),
}

impl Mode {
    /// Waiting at most `d` from now.
    pub fn timeout(d: std::time::Duration) -> Mode {
        Mode::Deadline(Instant::now().checked_add(d))
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Mode::Deadline(d) => d,
            _ => None,
        }
    }
}

/// Runs a select over `arms`; the index of the completed arm, or `None`
/// when `mode` ran out (non-blocking, or the deadline passed).
#[doc(hidden)]
#[inline]
pub fn run(arms: &mut [&mut dyn SelectArm], mode: Mode) -> Option<usize> {
    // The first try pass on its own, with nothing else set up: a select
    // with a ready arm (the common case) ends here.
    if let Some(i) = first_pass(arms) {
        return Some(i);
    }
    match mode {
        Mode::NonBlocking if arms.len() <= SMALL_ORDER => None,
        _ => run_waiting(arms, mode),
    }
}

/// The first try pass of a select of up to [`SMALL_ORDER`] arms (`None`
/// for more: [`run_waiting`] makes that pass), in a random order.
#[inline]
fn first_pass(arms: &mut [&mut dyn SelectArm]) -> Option<usize> {
    let n = arms.len();
    if n > SMALL_ORDER {
        return None;
    }
    let mut order = [0u8; SMALL_ORDER];
    for (i, o) in order[..n].iter_mut().enumerate() {
        *o = i as u8;
    }
    shuffle(&mut order[..n]);
    order[..n].iter().map(|&i| usize::from(i)).find(|&i| arms[i].try_complete())
}

/// The rest of [`run`]: the try pass (again, for selects beyond
/// [`SMALL_ORDER`] arms only the first time), registration and parking,
/// until an arm completes or `mode` runs out.
#[inline(never)]
fn run_waiting(arms: &mut [&mut dyn SelectArm], mode: Mode) -> Option<usize> {
    let n = arms.len();
    let mut order = Order::new(n);
    let mut ctx: Option<SelectCtx> = None;
    // `first_pass` made this round's try pass.
    let mut tried = n <= SMALL_ORDER;
    loop {
        // 1. Try pass, in a fresh random order.
        order.shuffle();
        let at = |k: usize| order.get(k);
        if !std::mem::take(&mut tried) {
            for k in 0..n {
                let i = at(k);
                if arms[i].try_complete() {
                    return Some(i);
                }
            }
        }
        // 2. Out of time?
        let deadline = match mode {
            Mode::NonBlocking => return None,
            Mode::Deadline(Some(d)) if Instant::now() >= d => return None,
            m => m.deadline(),
        };
        // 3. Register.
        let ctx = match &mut ctx {
            Some(c) => {
                c.reset();
                c
            }
            None => ctx.insert(SelectCtx::new()),
        };
        let mut round = Round { arms: &mut *arms, ctx, done: false };
        let mut ready = false;
        for k in 0..n {
            let i = at(k);
            if !round.arms[i].register(round.ctx, i) {
                ready = true;
                break;
            }
        }
        // 4. Park until claimed, or abort.
        let winner = if ready {
            round.ctx.abort().err()
        } else {
            loop {
                if let Some(w) = round.ctx.selected() {
                    break Some(w);
                }
                match deadline {
                    Some(d) if Instant::now() >= d => match round.ctx.abort() {
                        Ok(()) => break None,
                        Err(w) => break Some(w),
                    },
                    // Stack compaction (memory/compact.rs): the context on
                    // our stack is claimed by counterparts while we park.
                    Some(d) => {
                        let _exposed = crate::memory::StackExposed::enter();
                        park::park_until(d)
                    }
                    None => {
                        let _exposed = crate::memory::StackExposed::enter();
                        park::park()
                    }
                }
            }
        };
        // 5. Unregister, then complete the winner.
        round.unregister_all(None);
        round.done = true;
        drop(round);
        if let Some(w) = winner
            && arms[w].try_complete()
        {
            return Some(w);
        }
    }
}

/// One registered round; its drop (an unwind out of `park`) unregisters
/// every arm, passing on a claim it will not use.
struct Round<'r, 'a> {
    arms: &'r mut [&'a mut dyn SelectArm],
    ctx: &'r SelectCtx,
    done: bool,
}

impl Round<'_, '_> {
    fn unregister_all(&mut self, claimed: Option<usize>) {
        for (i, a) in self.arms.iter_mut().enumerate() {
            a.unregister(claimed == Some(i));
        }
    }
}

impl Drop for Round<'_, '_> {
    fn drop(&mut self) {
        if !self.done {
            // Nobody else decides the round after this abort; if a waker
            // already did, its notification is passed on.
            let claimed = self.ctx.abort().err();
            self.unregister_all(claimed);
        }
    }
}

/// Arms whose order is kept on the stack (a `select!` rarely has more; a
/// small array is cheap to set up on every select).
const SMALL_ORDER: usize = 16;

/// The order of a try pass: a permutation of the arms, on the stack for
/// selects of up to [`SMALL_ORDER`] arms.
struct Order {
    small: [u8; SMALL_ORDER],
    big: Vec<usize>,
    n: usize,
}

impl Order {
    fn new(n: usize) -> Order {
        let mut o = Order { small: [0; SMALL_ORDER], big: Vec::new(), n };
        if n <= SMALL_ORDER {
            for (i, s) in o.small[..n].iter_mut().enumerate() {
                *s = i as u8;
            }
        } else {
            o.big.extend(0..n);
        }
        o
    }

    /// A fresh random permutation.
    fn shuffle(&mut self) {
        if self.n <= SMALL_ORDER {
            shuffle(&mut self.small[..self.n]);
        } else {
            shuffle(&mut self.big);
        }
    }

    fn get(&self, k: usize) -> usize {
        if self.n <= SMALL_ORDER { self.small[k] as usize } else { self.big[k] }
    }
}

/// Shuffles `v` (Fisher-Yates) with a per-thread generator.
fn shuffle<I>(v: &mut [I]) {
    for i in (1..v.len()).rev() {
        let j = rand_below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// A value in `0..n` from a per-OS-thread xorshift generator. Never inlined:
/// it reads a thread-local, and a GVThread may resume on another OS thread
/// between calls (the address must not be cached in the caller's frame).
#[inline(never)]
fn rand_below(n: u64) -> u64 {
    debug_assert!(n <= 1 << 32, "select arms are counted in u32");
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = (s as *const Cell<u64> as u64) ^ 0x9E37_79B9_7F4A_7C15 | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        // The high 32 bits scaled into `0..n` by a multiply (Lemire's
        // reduction): no division on the select path.
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) * n) >> 32
    })
}
