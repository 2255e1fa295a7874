//! The futures bridge: driving a `Future` from blocking code, and running
//! blocking code without stalling a worker.
//!
//! | file | holds |
//! |---|---|
//! | [`block_on`](mod@block_on) | `block_on`: poll on the caller's own stack, park between polls |
//! | [`waker`](mod@waker) | the `Waker`s of `block_on`: a borrowed one for the first poll, an `Arc`-backed one after |
//! | [`unblock`](mod@unblock) | `unblock`: a bounded pool of OS threads for blocking calls |
//!
//! # Protocol
//!
//! `block_on` polls the future on the stack of whoever calls it. Between
//! polls it parks the caller through [`crate::sched::park::park`]: inside a
//! GVThread only that GVThread waits (its worker runs others); on a plain OS
//! thread the thread parks. The future's `Waker` sets a per-call `woken` flag
//! and then wakes the caller (a generation-checked GVThread wake, or
//! `Thread::unpark`). `block_on` re-polls only after it has consumed the
//! flag, and parks only after finding it clear:
//!
//! ```text
//! block_on                          any thread holding the Waker
//! --------                          ----------------------------
//! poll -> Pending
//! woken.swap(false) == false?       woken.swap(true) == false?
//!   park()  <-----------------------  then wake the GVThread / unpark
//! woken.swap(false) == true -> poll
//! ```
//!
//! Why this is correct:
//!
//! * **No lost wake.** A wake either flips the flag before `block_on` reads
//!   it (then `block_on` polls without parking) or after (then the flipper
//!   wakes the caller, and `park` does not lose a wake that races with it:
//!   `NOTIFIED` in the GVThread's state word, the unpark token for threads).
//! * **Nested `block_on`.** Each call has its own flag. An inner call may
//!   consume the GVThread-level wake that was meant for the outer one (both
//!   park the same GVThread), but the outer flag stays set, so the outer call
//!   re-polls instead of parking once control comes back to it.
//! * **Stale wakes.** A `Waker` that outlives its `block_on`, or its GVThread,
//!   only flips a flag nobody reads and sends a wake naming a (slot,
//!   generation) that no longer matches, which the scheduler ignores; a wake
//!   that reaches a still-running GVThread makes one later `park` return
//!   early, which every parker tolerates (parks may be spurious).
//!
//! Cost: a future that is ready on its first poll allocates nothing and
//! takes no reference count on the runtime (see [`waker`]); otherwise one
//! allocation per `block_on` call, reused by every later poll and every clone.

pub(crate) mod block_on;
pub(crate) mod unblock;
pub(crate) mod waker;

pub use block_on::block_on;
pub use unblock::unblock;
