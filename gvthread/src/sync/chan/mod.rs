//! MPMC channels ([`channel`], [`unbounded`]) whose blocking operations park.
//!
//! # Protocol
//!
//! A channel is one `std::sync::Mutex<State>` (critical sections are a few
//! instructions and never span a park, and no user code, not even a value's
//! `Drop`, runs under it) holding:
//!
//! * `buf`: the queued values;
//! * `recv_q`: receivers waiting for a value; `send_q`: senders waiting (see
//!   below), both [`WaitQueue`]s;
//! * the number of live `Sender`s and `Receiver`s.
//!
//! **Bounded (`capacity > 0`)**: a send pushes into `buf` if it holds fewer
//! than `capacity` values, else it waits in `send_q` for room. A receive pops
//! from `buf`, else waits in `recv_q`. Every push notifies (pops) one waiting
//! receiver and every pop one waiting sender: one wake per item or slot, no
//! thundering herd. **Unbounded** is bounded with `capacity == usize::MAX`.
//!
//! **Direct hand-off** (see `handoff`): a blocking receiver registers a slot
//! on its stack with its entry. A send that pops such an entry while `buf`
//! is empty writes the value straight into the slot (Go's send to a waiting
//! receiver): the value skips the buffer, and the receiver, once woken,
//! returns without taking the lock again. The room the value did not use
//! stays free, so a sender that had been notified of that room passes the
//! notification on to the next sender. The receiver's stack may have been
//! compacted meanwhile: the sender then writes into the saved copy of the
//! slot (see `handoff`, "Compacted receivers").
//!
//! **Fast waiter** (see `fast`; bounded and unbounded channels): a GVThread
//! that blocks in `recv` while no other receiver is queued registers its
//! hand-off slot in one lock-free word instead of the queue. A sender that
//! finds it (and nothing buffered) claims it and delivers into the slot; a
//! value pushed into the ring, the last sender's drop, or a notification
//! passed on by a queued receiver that leaves claims it and *pokes* it (look
//! again). Neither side takes the lock: a ping-pong message is one claim,
//! not two lock sections. Every path that notifies one receiver serves the
//! queue first and falls back on the fast waiter.
//!
//! **Rendezvous (`capacity == 0`)**: a blocking sender *offers* its value: it
//! appends the value to `buf` together with an offer id (kept in `offer_ids`,
//! parallel to `buf`), registers in `send_q` under that id, notifies one
//! receiver and waits until its offer has left `buf`. A receiver takes the
//! front offer and wakes exactly that sender, so `send` returns only once a
//! receiver has taken the value. A sender that gives up (timeout,
//! disconnection, unwinding, a dropped future) withdraws its offer if it is
//! still there and gets the value back; if it is gone, the send succeeded.
//! `try_send` succeeds only while some receiver is blocked waiting (in
//! `recv_q`): it hands the value over directly (above) or, for an async or
//! select receiver, appends a *committed* offer that nobody waits on and
//! notifies that receiver. A fresh blocking send also hands over directly
//! when a blocking receiver waits and no offer is queued ahead of it.
//!
//! **Select** (see `arms` and `sync::select`): a select registers one entry
//! per arm, claimed by whoever pops it first. A select's send arm on a
//! rendezvous channel never offers while waiting; a receiver that starts
//! waiting calls one such select-sender instead, which then commits its value
//! to that receiver. Offers committed by a select are tagged with its
//! identity and skipped by that same party's receives, so a select never
//! receives its own send.
//!
//! **Waiting** (one loop shared by the blocking, the timeout and the async
//! forms, [`Chan::recv_step`] / [`Chan::send_step`]): under the lock, try the
//! operation; if it cannot proceed, make sure the caller is queued, unlock
//! and park; repeat. The registration id is owned by a drop guard (or a
//! future, or a handle), so a waiter that leaves for any reason, unwinding
//! out of `park` at runtime shutdown included, deregisters.
//!
//! **Why no wake is lost**: the check and the enqueue happen under the same
//! lock as the state change and the dequeue-to-notify, so a waiter is either
//! satisfied or queued when the state changes in its favour. A notified
//! waiter (its entry popped) that leaves without using what it was notified
//! for passes the notification on to the next waiter if the condition still
//! holds (a value left for receivers, room left for senders). Hence, while
//! receivers wait, there are always at least as many notified-but-not-yet-
//! running receivers as queued values (and likewise for senders and free
//! slots). Disconnection (last `Sender` or last `Receiver` dropped) wakes
//! every waiter of the other side.
//!
//! One consequence of committed offers: if the only waiting receiver that a
//! `try_send` (on a rendezvous channel) handed its value to is an async
//! future that is then dropped, or a GVThread that unwinds at shutdown, the
//! value stays in the channel until the next receive, like a one-slot buffer.
//!
//! Dropping the last `Receiver` drops the values still buffered (bounded
//! channels) or committed (rendezvous); blocked senders get their own values
//! back in `SendError`.
//!
//! **Forced preemption**: every critical section of the state lock runs in a
//! runtime section ([`Chan::locked`]), so the SIGURG handler never freezes a
//! GVThread while it holds the lock; otherwise a peer on another worker
//! would block on it in the kernel, stalling that worker, until the frozen
//! GVThread is scheduled again. Wakes and value drops happen after the
//! section ends, since neither belongs inside one (a `Waker` may run
//! executor code).

mod arms;
mod error;
mod fast;
mod future;
mod handoff;
mod ring;

pub use arms::{RecvArm, SendArm};
pub use error::{
    RecvCancelError, RecvError, RecvTimeoutError, SendCancelError, SendError, SendTimeoutError, TryRecvError,
    TrySendError,
};
pub use future::{RecvFut, SendFut};

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use self::fast::FastWaiter;
use self::handoff::Slot;
use self::ring::Ring;
use super::waitq::{self, WaitId, WaitQueue};
use crate::sched::machine::{self, in_section};
use crate::sched::park::{self, Waiter};
use crate::sync::cancel::{CancelArm, CancellationToken};
use crate::sync::select;
use std::sync::atomic::{AtomicBool, Ordering, fence};

/// Creates a bounded multi-producer multi-consumer channel.
///
/// With `capacity > 0`, up to `capacity` values are buffered and
/// [`Sender::send`] parks while the buffer is full. With `capacity == 0` the
/// channel is a *rendezvous* channel: a send completes only once a receiver
/// has taken the value.
///
/// Both ends are `Clone + Send + Sync`; either end may live on a GVThread, a
/// plain OS thread, or (through [`Receiver::recv_async`] /
/// [`Sender::send_async`]) an async task. A blocking call parks only the
/// calling GVThread (its worker keeps running others); on a plain OS thread
/// it parks the OS thread.
///
/// ```
/// use gvthread::{Runtime, SchedulerConfig};
///
/// let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
/// let sum = rt.block_on(|| {
///     let (tx, rx) = gvthread::channel(16);
///     for p in 0..4u64 {
///         let tx = tx.clone();
///         gvthread::spawn(move |_| {
///             for i in 0..100 {
///                 tx.send(p * 100 + i).unwrap();
///             }
///         });
///     }
///     drop(tx); // the receiver ends once every producer is done
///     rx.into_iter().sum::<u64>()
/// });
/// assert_eq!(sum, (0..400).sum());
/// ```
pub fn channel<T: Send>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    // `UNBOUNDED` is reserved for `unbounded()`; a bound that large is the
    // same thing in practice.
    new_chan(capacity)
}

/// Creates an unbounded multi-producer multi-consumer channel: sends never
/// wait (the buffer grows as needed), receives park while it is empty.
///
/// Everything else is as for [`channel`]: both ends are `Clone + Send +
/// Sync`, usable from GVThreads, OS threads and async code, and in
/// [`select!`](crate::select).
///
/// ```
/// let (tx, rx) = gvthread::unbounded();
/// for i in 0..10_000 {
///     tx.send(i).unwrap(); // never blocks
/// }
/// assert_eq!(tx.capacity(), None);
/// assert_eq!(rx.len(), 10_000);
/// drop(tx);
/// assert_eq!(rx.iter().sum::<i32>(), (0..10_000).sum());
/// ```
pub fn unbounded<T: Send>() -> (Sender<T>, Receiver<T>) {
    new_chan(UNBOUNDED)
}

/// The capacity of an unbounded channel.
const UNBOUNDED: usize = usize::MAX;

fn new_chan<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let ring = (capacity > 0).then(|| Arc::new(Ring::new(capacity)));
    let chan = Arc::new(Chan {
        cap: capacity,
        ring: ring.clone(),
        recv_waiting: AtomicBool::new(false),
        send_waiting: AtomicBool::new(false),
        receivers_gone: AtomicBool::new(false),
        senders_gone: AtomicBool::new(false),
        fast: FastWaiter::new(),
        put_back: AtomicBool::new(false),
        state: Mutex::new(State {
            buf: Buf { ring, q: VecDeque::new() },
            offer_ids: VecDeque::new(),
            recv_q: WaitQueue::new(),
            send_q: WaitQueue::new(),
            senders: 1,
            receivers: 1,
        }),
    });
    (Sender { chan: chan.clone(), reg: None }, Receiver { chan, reg: None })
}

/// The shared part of a channel.
pub(crate) struct Chan<T> {
    cap: usize,
    /// Bounded and unbounded: the values (see `ring`); `None`: rendezvous.
    ring: Option<Arc<Ring<T>>>,
    /// Whether `recv_q` / `send_q` are non-empty (see `ring`).
    recv_waiting: AtomicBool,
    send_waiting: AtomicBool,
    /// Set (under the lock) when the last `Receiver` is gone, so the fast
    /// send path can leave disconnection to the locked path.
    receivers_gone: AtomicBool,
    /// Set (under the lock) when the last `Sender` is gone, for receivers
    /// registering as the fast waiter (see `fast`).
    senders_gone: AtomicBool,
    /// The lock-free registration of one blocked receiver (see `fast`).
    fast: FastWaiter,
    /// Bounded and unbounded: whether values wait in `Buf::q` (put back by
    /// a receiver that unwound with a handed-over value), which only the
    /// locked path takes; mirrored like the waiting flags (see `fast`).
    put_back: AtomicBool,
    state: Mutex<State<T>>,
}

/// The queued values.
struct Buf<T> {
    /// Bounded and unbounded: the lock-free ring, shared with [`Chan::ring`].
    ring: Option<Arc<Ring<T>>>,
    /// Rendezvous: the offered values. Otherwise: values put back by a
    /// receiver that unwound with a handed-over value (taken first).
    q: VecDeque<T>,
}

impl<T> Buf<T> {
    fn is_empty(&self) -> bool {
        self.q.is_empty() && self.ring.as_ref().is_none_or(|r| r.is_empty())
    }

    fn len(&self) -> usize {
        self.q.len() + self.ring.as_ref().map_or(0, |r| r.len())
    }

    fn pop_front(&mut self) -> Option<T> {
        self.q.pop_front().or_else(|| self.ring.as_ref()?.pop())
    }

    /// Everything queued now (for the last receiver's drop).
    fn drain_all(&mut self) -> VecDeque<T> {
        let mut all = std::mem::take(&mut self.q);
        if let Some(r) = &self.ring {
            while let Some(v) = r.pop() {
                all.push_back(v);
            }
        }
        all
    }
}

struct State<T> {
    buf: Buf<T>,
    /// Rendezvous only: the offer of each value of `buf` (same order; ids
    /// strictly increasing because they come from `send_q`'s counter).
    offer_ids: VecDeque<Offer>,
    recv_q: WaitQueue,
    send_q: WaitQueue,
    senders: usize,
    receivers: usize,
}

/// How a step that cannot proceed should wait.
#[derive(Clone, Copy)]
pub(crate) enum Wait<'a> {
    /// Do not wait: leave the queue (passing on any notification).
    No,
    /// Queue the calling GVThread or OS thread.
    Current,
    /// Queue an async task.
    Task(&'a Waker),
}

/// Outcome of one receive step.
pub(crate) enum RecvStep<T> {
    Item(T),
    Disconnected,
    /// Nothing available; the caller is queued (or, with `Wait::No`, left).
    Empty,
}

/// Outcome of one send step.
pub(crate) enum SendStep<T> {
    Sent,
    Disconnected(T),
    /// Only with `Wait::No`: the value could not be sent and is returned.
    Full(T),
    /// The caller is queued; the value is still in the caller's slot
    /// (bounded) or offered in the channel (rendezvous).
    Pending,
}

/// Which side a registration belongs to.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    Recv,
    Send,
}

/// A rendezvous offer: its id and, for a value committed by `try_send` or a
/// select's send arm to a waiting receiver, who committed it.
#[derive(Clone, Copy)]
struct Offer {
    id: WaitId,
    /// 0 for a blocked sender's offer (registered in `send_q` under `id`);
    /// the [`party_id`] of a select that committed it; else [`ORPHAN`].
    from: u64,
}

/// [`Offer::from`] of a value anyone may take (committed by `try_send`, or
/// put back by a leaving receiver): nobody's party id (GVThreads' ids have
/// the top bit set; OS threads' are TLS addresses).
const ORPHAN: u64 = 1;

/// An identity of the calling GVThread (or OS thread) for [`Offer::from`]:
/// a party never receives a value it committed itself (Go's select never
/// pairs with itself). Never 0. Never inlined: it reads a thread-local.
#[inline(never)]
pub(crate) fn party_id() -> u64 {
    thread_local! {
        static ANCHOR: u8 = const { 0 };
    }
    match crate::sched::machine::current_gvthread() {
        // Runtimes are told apart by their address, GVThreads by slot.
        Some((m, slot)) => (Arc::as_ptr(&m.shared) as u64).rotate_left(17) ^ (u64::from(slot) << 1) | 1 << 63 | 1,
        // An address inside this OS thread's TLS block (below 2^63).
        None => ANCHOR.with(|a| a as *const u8 as u64).max(1) & !(1 << 63),
    }
}

impl<T> State<T> {
    /// The index of the first value the caller may take: the front one,
    /// except that a rendezvous receiver skips offers it committed itself.
    fn takeable(&self, rendezvous: bool) -> Option<usize> {
        if self.buf.is_empty() {
            return None;
        }
        if !rendezvous || self.offer_ids.iter().all(|o| o.from == 0) {
            return Some(0);
        }
        let me = party_id();
        self.offer_ids.iter().position(|o| o.from != me)
    }

    /// Rendezvous: whether a blocked sender's offer is queued (only then can
    /// `send_q` hold entries other than select-senders).
    fn blocked_offers(&self) -> bool {
        self.offer_ids.iter().any(|o| o.from == 0)
    }

    /// Takes the next value and says whom to wake for it: a sender waiting
    /// for room (bounded) or the sender whose offer this was (rendezvous).
    fn take(&mut self, rendezvous: bool) -> Option<(T, Option<Waiter>)> {
        if !rendezvous {
            // The ring may be emptied by fast-path receivers at any time.
            let v = self.buf.pop_front()?;
            return Some((v, self.send_q.pop()));
        }
        let i = self.takeable(rendezvous)?;
        let v = if i == 0 { self.buf.q.pop_front() } else { self.buf.q.remove(i) }.expect("takeable index");
        let w = if rendezvous {
            let offer = if i == 0 { self.offer_ids.pop_front() } else { self.offer_ids.remove(i) };
            let offer = offer.expect("offer ids parallel buf");
            if offer.from == 0 { self.send_q.notify(offer.id) } else { None }
        } else {
            self.send_q.pop()
        };
        Some((v, w))
    }

    fn offered(&self, id: WaitId) -> Option<usize> {
        self.offer_ids.binary_search_by_key(&id, |o| o.id).ok()
    }

    /// Rendezvous: takes back offer `id` if no receiver has taken it yet.
    fn withdraw(&mut self, id: WaitId) -> Option<T> {
        self.send_q.remove(id);
        let i = self.offered(id)?;
        self.offer_ids.remove(i);
        self.buf.q.remove(i)
    }

    /// A receiver leaves `recv_q` without a value: pass on its notification
    /// if it had one and values remain.
    fn leave_recv(&mut self, id: WaitId) -> Option<Waiter> {
        if self.recv_q.remove(id).is_none() && !self.buf.is_empty() { self.recv_q.pop() } else { None }
    }

    /// A bounded sender leaves `send_q` without sending: pass on its
    /// notification if it had one and room remains.
    fn leave_send(&mut self, id: WaitId) -> Option<Waiter> {
        let room = self.buf.ring.as_ref().is_some_and(|r| !r.is_full());
        if self.send_q.remove(id).is_none() && room { self.send_q.pop() } else { None }
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No user code runs under this lock, so it cannot be poisoned by a
        // user panic; stay robust anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` under the state lock, inside a runtime section (see the
    /// module docs): `f` must not park, wake, or drop values of `T`; it
    /// returns what the caller does once the lock is released.
    #[inline]
    fn locked<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        in_section(|| {
            let mut st = self.lock();
            let r = f(&mut st);
            if self.ring.is_some() {
                // Mirror the queues for the fast paths (see `ring`), only
                // when they change. Relaxed: a waiter that set its flag issues
                // a SeqCst fence before it re-checks the ring (`recheck`),
                // and the fast paths fence before they read the flags.
                let (rw, sw) = (!st.recv_q.is_empty(), !st.send_q.is_empty());
                if self.recv_waiting.load(Ordering::Relaxed) != rw {
                    self.recv_waiting.store(rw, Ordering::Relaxed);
                }
                let pb = !st.buf.q.is_empty();
                if self.put_back.load(Ordering::Relaxed) != pb {
                    self.put_back.store(pb, Ordering::Relaxed);
                }
                if self.send_waiting.load(Ordering::Relaxed) != sw {
                    self.send_waiting.store(sw, Ordering::Relaxed);
                }
            }
            r
        })
    }

    /// Fast send (see `ring`): into the ring without the lock, then notify a
    /// receiver that started waiting meanwhile. The value back if a receiver
    /// already waits, the ring is full, the channel is a rendezvous one, or
    /// every receiver may be gone.
    #[inline]
    fn try_fast_send(&self, v: T) -> Result<(), T> {
        let Some(ring) = &self.ring else { return Err(v) };
        // A receiver queued on the locked path: that path hands the value
        // over directly (one lock section, and the woken receiver does not
        // relock).
        if self.receivers_gone.load(Ordering::Relaxed) || self.recv_waiting.load(Ordering::Relaxed) {
            return Err(v);
        }
        // The fast waiter, with nothing queued ahead of it: straight into
        // its slot, without the lock (see `fast`).
        let v = if self.fast.maybe_waiting() && ring.is_empty() && !self.put_back.load(Ordering::Relaxed) {
            match self.fast_deliver(v) {
                Ok(()) => return Ok(()),
                Err(v) => v,
            }
        } else {
            v
        };
        self.try_ring_send(ring, v)
    }

    /// The rest of [`try_fast_send`](Self::try_fast_send): into the ring.
    #[inline(never)]
    fn try_ring_send(&self, ring: &Ring<T>, v: T) -> Result<(), T> {
        // In a runtime section: see `ring` ("Forced preemption").
        in_section(|| ring.push(v))?;
        // Dekker with a registering receiver and with the last receiver's
        // drop (see `ring`).
        fence(Ordering::SeqCst);
        if self.receivers_gone.load(Ordering::Relaxed) {
            // The last receiver left after our check, and its drain may have
            // run before our push: nobody will take what is in the ring now.
            // The send counts as done before the disconnection, and like
            // everything queued then, its value is dropped, here.
            self.discard_queued();
            return Ok(());
        }
        if self.recv_waiting.load(Ordering::Relaxed) {
            let w = self.locked(|st| st.recv_q.pop());
            waitq::wake(w.or_else(|| self.fast_poke()));
        } else if self.fast.maybe_waiting() {
            waitq::wake(self.fast_poke());
        }
        Ok(())
    }

    /// Hands `v` to the fast waiter, if one is registered (see `fast`).
    #[inline]
    fn fast_deliver(&self, v: T) -> Result<(), T> {
        // One read of the machine for the section, the claim and the wake,
        // all inside the section (no switch in between).
        let here = machine::current();
        machine::in_section_of(here, || {
            let Some((p, who)) = self.fast.claim_gvthread() else {
                return Err(v);
            };
            match here {
                // Our own runtime (the common case): no waiter to make, our
                // machine keeps the runtime alive until the wake.
                Some(m) if who.is_near(m) => {
                    // SAFETY: `p` is the slot of the registration we just
                    // claimed on `who`'s stack (its owner waits for our
                    // completion).
                    unsafe { Slot::deliver_to(p, v, &m.shared, who.slot()) };
                    m.shared.wake_from(who.slot(), who.generation(), here);
                }
                _ => {
                    // SAFETY: claimed, so not ended: its runtime is alive
                    // (see `GvPtr`); the waiter keeps it so past our
                    // completion.
                    let w = unsafe { who.waiter_on(here) };
                    // SAFETY: as above, and `w` is the registration's waiter.
                    unsafe { Slot::deliver(p, v, &w) };
                    w.wake_on(here);
                }
            }
            Ok(())
        })
    }

    /// Pokes the fast waiter, if one is registered (see `fast`): whom to wake.
    fn fast_poke(&self) -> Option<Waiter> {
        if !self.fast.maybe_waiting() {
            return None;
        }
        in_section(|| {
            let (p, w) = self.fast.claim()?;
            // SAFETY: as in `fast_deliver`.
            unsafe { Slot::<T>::poke(p, &w) };
            Some(w)
        })
    }

    /// A receiver queued on the locked path left without the value it may
    /// have been notified of, and `w` is whom the lock's queue passed the
    /// notification on to: if nobody, the fast waiter gets it while values
    /// remain (see `fast`). An extra poke is harmless.
    pub(crate) fn pass_on_fast(&self, w: Option<Waiter>) -> Option<Waiter> {
        if w.is_some() {
            return w;
        }
        let ring = self.ring.as_ref()?;
        // Dekker with a registering fast waiter's re-check (see `fast`).
        fence(Ordering::SeqCst);
        if ring.is_empty() && !self.put_back.load(Ordering::Relaxed) { None } else { self.fast_poke() }
    }

    /// Drops every value in the ring (once every receiver is gone).
    fn discard_queued(&self) {
        if let Some(ring) = &self.ring {
            // One at a time: values' `Drop` is user code, run outside the
            // runtime section.
            while let Some(v) = in_section(|| ring.pop()) {
                drop(v);
            }
        }
    }

    /// Fast receive (see `ring`): from the ring without the lock, then
    /// notify a sender waiting for room. `None`: take the locked path.
    #[inline]
    fn try_fast_recv(&self) -> Option<T> {
        let ring = self.ring.as_ref()?;
        // A racy look first, by plain loads: an empty ring (a receiver about
        // to block) costs no runtime section.
        if ring.is_empty() {
            return None;
        }
        self.try_ring_recv(ring)
    }

    /// The rest of [`try_fast_recv`](Self::try_fast_recv): out of the ring.
    #[inline(never)]
    fn try_ring_recv(&self, ring: &Ring<T>) -> Option<T> {
        // In a runtime section: see `ring` ("Forced preemption").
        let v = in_section(|| ring.pop())?;
        // Dekker with a registering sender (see `ring`).
        fence(Ordering::SeqCst);
        if self.send_waiting.load(Ordering::Relaxed) {
            let w = self.locked(|st| st.send_q.pop());
            waitq::wake(w);
        }
        Some(v)
    }

    /// After registering (the section's epilogue stored the flag): whether
    /// the ring changed in the waiter's favour, so it must retry rather than
    /// park (see `ring`).
    pub(crate) fn recheck(&self, side: Side) -> bool {
        let Some(ring) = &self.ring else { return false };
        fence(Ordering::SeqCst);
        match side {
            Side::Recv => !ring.is_empty(),
            Side::Send => !ring.is_full(),
        }
    }

    fn rendezvous(&self) -> bool {
        self.cap == 0
    }

    fn capacity(&self) -> Option<usize> {
        (self.cap != UNBOUNDED).then_some(self.cap)
    }

    fn len(&self) -> usize {
        // Rendezvous: offers are not queued values.
        if self.rendezvous() { 0 } else { self.locked(|st| st.buf.len()) }
    }

    fn is_full(&self) -> bool {
        self.cap != UNBOUNDED && self.len() >= self.cap
    }

    /// One receive attempt; `reg` is the caller's registration in `recv_q`.
    #[inline]
    pub(crate) fn recv_step(&self, reg: &mut Option<WaitId>, wait: Wait<'_>) -> RecvStep<T> {
        // The lock-free path inline (a select's try pass, `try_recv`); on a
        // miss the full step looks at it again (one emptiness check).
        if reg.is_none()
            && let Some(v) = self.try_fast_recv()
        {
            return RecvStep::Item(v);
        }
        self.recv_step_slot(reg, wait, None)
    }

    /// [`recv_step`](Self::recv_step) for a blocking receiver with a
    /// hand-off slot (see `handoff`), registered with its entry.
    fn recv_step_slot(&self, reg: &mut Option<WaitId>, wait: Wait<'_>, slot: Option<&Slot<T>>) -> RecvStep<T> {
        if reg.is_none()
            && let Some(v) = self.try_fast_recv()
        {
            return RecvStep::Item(v);
        }
        loop {
            let queued = reg.is_some();
            let (step, w) = self.locked(|st| Self::recv_locked(st, self.rendezvous(), reg, wait, slot));
            // Left the queue without a value: pass a notification on to the
            // fast waiter if nobody queued took it.
            let w = if queued && reg.is_none() && matches!(step, RecvStep::Empty) { self.pass_on_fast(w) } else { w };
            waitq::wake(w);
            if matches!(step, RecvStep::Empty) && reg.is_some() && self.recheck(Side::Recv) {
                continue;
            }
            return step;
        }
    }

    /// The part of [`recv_step`](Self::recv_step) under the lock; returns
    /// the outcome and whom to wake.
    fn recv_locked(
        st: &mut State<T>,
        rendezvous: bool,
        reg: &mut Option<WaitId>,
        wait: Wait<'_>,
        slot: Option<&Slot<T>>,
    ) -> (RecvStep<T>, Option<Waiter>) {
        if let Some(v) = slot.and_then(Slot::take) {
            // Handed over: a sender popped our entry.
            *reg = None;
            return (RecvStep::Item(v), None);
        }
        if let Some((v, w)) = st.take(rendezvous) {
            if let Some(id) = reg.take() {
                // Notified or not, we got a value: just drop the entry.
                st.recv_q.remove(id);
            }
            return (RecvStep::Item(v), w);
        }
        if st.senders == 0 {
            if let Some(id) = reg.take() {
                st.recv_q.remove(id);
            }
            return (RecvStep::Disconnected, None);
        }
        let pass_on = match (wait, *reg) {
            (Wait::No, Some(id)) => {
                *reg = None;
                st.leave_recv(id)
            }
            (Wait::No, None) => None,
            (Wait::Current, Some(id)) if st.recv_q.contains(id) => None,
            (Wait::Task(w), Some(id)) if st.recv_q.refresh(id, &Waiter::Task(w.clone())) => None,
            (Wait::Current, _) => {
                *reg = Some(match slot {
                    Some(s) => st.recv_q.push_slot(s.as_ptr()),
                    None => st.recv_q.push_current(),
                });
                Self::call_select_sender(st, rendezvous)
            }
            (Wait::Task(w), _) => {
                *reg = Some(st.recv_q.push(Waiter::Task(w.clone())));
                Self::call_select_sender(st, rendezvous)
            }
        };
        (RecvStep::Empty, pass_on)
    }

    /// Rendezvous: a receiver just started waiting with no offer queued, so
    /// every entry of `send_q` is a select-sender (see `arms`); claim one so
    /// it comes and commits its value.
    fn call_select_sender(st: &mut State<T>, rendezvous: bool) -> Option<Waiter> {
        if rendezvous && !st.blocked_offers() { st.send_q.pop_other(None) } else { None }
    }

    /// One send attempt. `value` holds the value until the channel takes it;
    /// `reg` is the caller's registration in `send_q` (bounded: waiting for
    /// room; rendezvous: its outstanding offer).
    pub(crate) fn send_step(&self, value: &mut Option<T>, reg: &mut Option<WaitId>, wait: Wait<'_>) -> SendStep<T> {
        self.send_step_from(value, reg, wait, ORPHAN, false)
    }

    /// [`send_step`](Self::send_step) where a rendezvous value committed by
    /// a `Wait::No` send is tagged `from` (see [`Offer::from`]): a select
    /// passes its [`party_id`] so that it never receives its own send.
    ///
    /// `notified`: the caller was notified of room (a select whose send arm
    /// was claimed), so a hand-off that leaves the room free passes it on.
    pub(crate) fn send_step_from(
        &self,
        value: &mut Option<T>,
        reg: &mut Option<WaitId>,
        wait: Wait<'_>,
        from: u64,
        notified: bool,
    ) -> SendStep<T> {
        if reg.is_none()
            && !notified
            && let Some(v) = value.take()
        {
            match self.try_fast_send(v) {
                Ok(()) => return SendStep::Sent,
                Err(v) => *value = Some(v),
            }
        }
        loop {
            let mut extra = None;
            let (step, w) = self.locked(|st| {
                if self.rendezvous() {
                    Self::send_rendezvous_locked(st, value, reg, wait, from)
                } else {
                    let ring = self.ring.as_deref().expect("bounded channels have a ring");
                    Self::send_bounded_locked(st, ring, value, reg, wait, notified, &mut extra)
                }
            });
            // A value that went into the ring with no queued receiver told:
            // the fast waiter may be waiting for it (see `fast`).
            let w = if matches!(step, SendStep::Sent) && w.is_none() && extra.is_none() && !self.rendezvous() {
                self.pass_on_fast(None)
            } else {
                w
            };
            waitq::wake(w);
            waitq::wake(extra);
            if matches!(step, SendStep::Pending) && self.recheck(Side::Send) {
                continue;
            }
            return step;
        }
    }

    /// Rendezvous part of [`send_step`](Self::send_step), under the lock;
    /// returns the outcome and whom to wake.
    fn send_rendezvous_locked(
        st: &mut State<T>,
        value: &mut Option<T>,
        reg: &mut Option<WaitId>,
        wait: Wait<'_>,
        from: u64,
    ) -> (SendStep<T>, Option<Waiter>) {
        if let Some(id) = *reg {
            if st.offered(id).is_none() {
                // A receiver took our offer.
                *reg = None;
                return (SendStep::Sent, None);
            }
            let waiter = match wait {
                _ if st.receivers == 0 => None,
                Wait::No => None,
                Wait::Current => Some(None),
                Wait::Task(w) => Some(Some(Waiter::Task(w.clone()))),
            };
            let step = match waiter {
                Some(w) => {
                    if let Some(w) = w {
                        // Still offered, so still registered under `id`.
                        st.send_q.refresh(id, &w);
                    }
                    SendStep::Pending
                }
                None => {
                    *reg = None;
                    let v = st.withdraw(id).expect("checked offered above");
                    if st.receivers == 0 { SendStep::Disconnected(v) } else { SendStep::Full(v) }
                }
            };
            return (step, None);
        }
        let Some(v) = value.take() else { return (SendStep::Sent, None) };
        if st.receivers == 0 {
            return (SendStep::Disconnected(v), None);
        }
        // A receiver blocked waiting (a live one: selects served elsewhere
        // are skipped) takes the value at once: directly into its hand-off
        // slot if it has one and no offer is queued ahead of us.
        let popped = if st.buf.q.is_empty() || matches!(wait, Wait::No) { st.recv_q.pop_slot() } else { None };
        let notified = match popped {
            Some((w, Some(p))) if st.buf.q.is_empty() => {
                // SAFETY: `p` is the slot of the `Slot<T>` entry we just
                // popped from this channel's `recv_q`, under its lock, and
                // `w` is that entry's waiter.
                unsafe { Slot::deliver(p, v, &w) };
                return (SendStep::Sent, Some(w));
            }
            popped => popped.map(|(w, _)| w),
        };
        let id = match wait {
            Wait::No => {
                // Commit the value to the receiver we popped.
                let Some(w) = notified else { return (SendStep::Full(v), None) };
                let id = st.send_q.alloc_id();
                st.buf.q.push_back(v);
                st.offer_ids.push_back(Offer { id, from });
                return (SendStep::Sent, Some(w));
            }
            Wait::Current => {
                let id = st.send_q.push_current();
                *reg = Some(id);
                id
            }
            Wait::Task(w) => {
                let id = st.send_q.push(Waiter::Task(w.clone()));
                *reg = Some(id);
                id
            }
        };
        st.buf.q.push_back(v);
        st.offer_ids.push_back(Offer { id, from: 0 });
        let w = notified.or_else(|| st.recv_q.pop());
        (if reg.is_some() { SendStep::Pending } else { SendStep::Sent }, w)
    }

    /// Bounded part of [`send_step`](Self::send_step), under the lock;
    /// returns the outcome and whom to wake.
    /// `ring` is the channel's (a borrow: no reference counting per send).
    fn send_bounded_locked(
        st: &mut State<T>,
        ring: &Ring<T>,
        value: &mut Option<T>,
        reg: &mut Option<WaitId>,
        wait: Wait<'_>,
        notified: bool,
        extra: &mut Option<Waiter>,
    ) -> (SendStep<T>, Option<Waiter>) {
        let Some(v) = value.take() else {
            let w = reg.take().and_then(|id| st.leave_send(id));
            return (SendStep::Sent, w);
        };
        if st.receivers == 0 {
            if let Some(id) = reg.take() {
                st.send_q.remove(id);
            }
            return (SendStep::Disconnected(v), None);
        }
        // A blocked receiver and nothing buffered: hand the value over
        // directly (see `handoff`).
        let popped = if st.buf.is_empty() { st.recv_q.pop_slot() } else { None };
        let v = match popped {
            Some((w, Some(p))) => {
                // Whether we were notified of room (our entry was popped).
                let notified = reg.take().is_some_and(|id| st.send_q.remove(id).is_none()) || notified;
                // SAFETY: `p` is the slot of the `Slot<T>` entry we just
                // popped from this channel's `recv_q`, under its lock, and
                // `w` is that entry's waiter.
                unsafe { Slot::deliver(p, v, &w) };
                // The room we were notified of is still free: pass the
                // notification on, or a waiting sender would miss it.
                if notified {
                    *extra = st.send_q.pop();
                }
                return (SendStep::Sent, Some(w));
            }
            popped => {
                // A receiver without a slot (async, select) was popped: it
                // is woken whatever happens next (at worst spuriously).
                *extra = popped.map(|(w, _)| w);
                match ring.push(v) {
                    Ok(()) => {
                        if let Some(id) = reg.take() {
                            st.send_q.remove(id);
                        }
                        let w = if extra.is_some() { None } else { st.recv_q.pop() };
                        return (SendStep::Sent, w);
                    }
                    Err(v) => v,
                }
            }
        };
        match (wait, *reg) {
            (Wait::No, Some(id)) => {
                *reg = None;
                (SendStep::Full(v), st.leave_send(id))
            }
            (Wait::No, None) => (SendStep::Full(v), None),
            (Wait::Current, Some(id)) if st.send_q.contains(id) => {
                *value = Some(v);
                (SendStep::Pending, None)
            }
            (Wait::Task(w), Some(id)) if st.send_q.refresh(id, &Waiter::Task(w.clone())) => {
                *value = Some(v);
                (SendStep::Pending, None)
            }
            (Wait::Current, _) => {
                *reg = Some(st.send_q.push_current());
                *value = Some(v);
                (SendStep::Pending, None)
            }
            (Wait::Task(w), _) => {
                *reg = Some(st.send_q.push(Waiter::Task(w.clone())));
                *value = Some(v);
                (SendStep::Pending, None)
            }
        }
    }

    /// Deregisters `id` of `side` for a party that gives up (drop guards,
    /// dropped futures and handles). A withdrawn rendezvous offer is dropped
    /// after the lock is released.
    pub(crate) fn leave(&self, side: Side, id: WaitId) {
        let (w, withdrawn) = self.locked(|st| match side {
            Side::Recv => (st.leave_recv(id), None),
            Side::Send if self.rendezvous() => (None, st.withdraw(id)),
            Side::Send => (st.leave_send(id), None),
        });
        let w = if matches!(side, Side::Recv) { self.pass_on_fast(w) } else { w };
        waitq::wake(w);
        drop(withdrawn);
    }

    /// A blocking receiver leaves (it unwinds out of `park`): deregister,
    /// and if a value was handed over meanwhile, put it back at the front so
    /// that the next receiver gets it.
    fn leave_with_slot(&self, id: WaitId, slot: &Slot<T>) {
        let rendezvous = self.rendezvous();
        let w = self.locked(|st| {
            if st.recv_q.remove(id).is_some() {
                return None;
            }
            if let Some(v) = slot.take() {
                st.buf.q.push_front(v);
                if rendezvous {
                    // Id 0 sorts before every real offer; nobody waits on it.
                    st.offer_ids.push_front(Offer { id: 0, from: ORPHAN });
                }
            }
            // Notified (by a hand-off or otherwise): pass it on.
            if st.buf.is_empty() { None } else { st.recv_q.pop() }
        });
        waitq::wake(self.pass_on_fast(w));
    }

    fn recv_deadline(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        // Declared before `reg`, so it outlives the registration.
        let slot = Slot::new();
        let mut reg = Registration { chan: self, side: Side::Recv, id: None, slot: Some(&slot), fast: false };
        // The common ways through stay in this loop (a fast registration,
        // a park, the value); the rest is outlined, keeping this frame small.
        loop {
            if reg.fast {
                // The fast waiter (see `fast`): parked until a sender
                // completes us (a value, or a poke) or the deadline.
                park_slot::<T>(deadline);
                if let Some(v) = slot.take() {
                    reg.fast = false;
                    return Ok(v);
                }
                match self.fast_woken_empty(&slot, deadline) {
                    FastWoken::Registered => {}
                    FastWoken::Left(None) => reg.fast = false,
                    FastWoken::Left(Some(v)) => {
                        reg.fast = false;
                        return Ok(v);
                    }
                }
                continue;
            }
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            if !timed_out && reg.id.is_none() {
                match self.fast_register(&slot, &mut reg.fast) {
                    Some(v) => return Ok(v),
                    None if reg.fast => continue,
                    None => {}
                }
            }
            if let Some(r) = self.recv_locked_round(&slot, &mut reg.id, timed_out, deadline) {
                return r;
            }
        }
    }

    /// A fast waiter woke without a value (see `fast`): a poke, a spurious
    /// wake, or its deadline.
    #[inline(never)]
    fn fast_woken_empty(&self, slot: &Slot<T>, deadline: Option<Instant>) -> FastWoken<T> {
        if slot.take_poke() {
            return FastWoken::Left(None);
        }
        if deadline.is_none_or(|d| Instant::now() < d) {
            return FastWoken::Registered; // a spurious wake: still registered
        }
        if self.fast.withdraw(slot.as_ptr()) {
            // Last look under the lock, then the timeout.
            return FastWoken::Left(None);
        }
        // Claimed meanwhile: its completion is on the way.
        FastWoken::Left(self.await_fast(slot))
    }

    /// One round of a blocking receive on the locked path: a value, the
    /// end (disconnected, or timed out), or `None` after a park (look
    /// again).
    #[inline(never)]
    fn recv_locked_round(
        &self,
        slot: &Slot<T>,
        id: &mut Option<WaitId>,
        timed_out: bool,
        deadline: Option<Instant>,
    ) -> Option<Result<T, RecvTimeoutError>> {
        let wait = if timed_out { Wait::No } else { Wait::Current };
        match self.recv_step_slot(id, wait, Some(slot)) {
            RecvStep::Item(v) => Some(Ok(v)),
            RecvStep::Disconnected => Some(Err(RecvTimeoutError::Disconnected)),
            RecvStep::Empty if timed_out => Some(Err(RecvTimeoutError::Timeout)),
            RecvStep::Empty => {
                park_slot::<T>(deadline);
                // Handed over while we were parked: no need to lock.
                let v = slot.take()?;
                *id = None;
                Some(Ok(v))
            }
        }
    }

    /// Registers a blocking receiver as the fast waiter if it may (a
    /// GVThread, a ring channel, nobody queued on the locked path, the
    /// registration free) and nothing arrived meanwhile; sets `*fast` then.
    /// A value it had to take instead is returned; `None` with `*fast`
    /// clear: take the locked path (see `fast`).
    fn fast_register(&self, slot: &Slot<T>, fast: &mut bool) -> Option<T> {
        let ring = self.ring.as_ref()?;
        if self.recv_waiting.load(Ordering::Relaxed) || self.put_back.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(v) = self.try_fast_recv() {
            return Some(v);
        }
        // OS threads keep to the locked path.
        let here = machine::current();
        let me = park::GvPtr::current_on(here?)?;
        if !machine::in_section_of(here, || self.fast.register(slot.as_ptr(), me)) {
            return None;
        }
        // Dekker with senders and the last sender's drop (see `fast`).
        fence(Ordering::SeqCst);
        if ring.is_empty() && !self.senders_gone.load(Ordering::Relaxed) && !self.put_back.load(Ordering::Relaxed) {
            *fast = true;
            return None;
        }
        if self.fast.withdraw(slot.as_ptr()) {
            return None;
        }
        // Claimed meanwhile: wait for its completion (registered until then,
        // for the drop guard's sake).
        *fast = true;
        let got = self.await_fast(slot);
        *fast = false;
        got
    }

    /// After a failed withdrawal: waits until the claimer completes us. The
    /// value it delivered, or `None` for a poke.
    fn await_fast(&self, slot: &Slot<T>) -> Option<T> {
        loop {
            if let Some(v) = slot.take() {
                return Some(v);
            }
            if slot.take_poke() {
                return None;
            }
            park_slot::<T>(None);
        }
    }

    /// A fast waiter leaves abnormally (unwinding out of `park`): withdraw,
    /// or wait for the claimer and put a delivered value back at the front,
    /// passing the notification on (see `fast`).
    fn leave_fast(&self, slot: &Slot<T>) {
        if self.fast.withdraw(slot.as_ptr()) {
            return;
        }
        let w = match self.await_fast(slot) {
            Some(v) => self.locked(|st| {
                st.buf.q.push_front(v);
                st.recv_q.pop()
            }),
            None => None,
        };
        waitq::wake(self.pass_on_fast(w));
    }

    #[inline]
    fn send_deadline(&self, value: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        // The lock-free paths first, before any registration exists (what
        // `send_step` would try first anyway).
        match self.try_fast_send(value) {
            Ok(()) => Ok(()),
            Err(v) => self.send_waiting_deadline(v, deadline),
        }
    }

    /// [`send_deadline`](Self::send_deadline) past its lock-free paths.
    #[inline(never)]
    fn send_waiting_deadline(&self, value: T, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        let mut value = Some(value);
        let mut reg = Registration { chan: self, side: Side::Send, id: None, slot: None, fast: false };
        loop {
            let wait = match deadline {
                Some(d) if Instant::now() >= d => Wait::No,
                _ => Wait::Current,
            };
            match self.send_step(&mut value, &mut reg.id, wait) {
                SendStep::Sent => return Ok(()),
                SendStep::Disconnected(v) => return Err(SendTimeoutError::Disconnected(v)),
                SendStep::Full(v) => return Err(SendTimeoutError::Timeout(v)),
                SendStep::Pending => park_opt(deadline),
            }
        }
    }
}

/// Parks a blocking receiver whose hand-off slot is on its stack: a sender
/// delivers into it wherever it is, even in a compacted stack (see
/// `handoff`), unless its type is too aligned for the copy.
#[inline]
fn park_slot<T>(deadline: Option<Instant>) {
    let _exposed = (!Slot::<T>::MOVABLE).then(crate::memory::StackExposed::enter);
    park_opt(deadline);
}

#[inline]
fn park_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => park::park_until(d),
        None => park::park(),
    }
}

fn deadline_after(d: Duration) -> Option<Instant> {
    // An unrepresentable deadline means "never".
    Instant::now().checked_add(d)
}

/// How a fast waiter that woke without a value goes on (see
/// `Chan::fast_woken_empty`).
enum FastWoken<T> {
    /// Still registered: park again.
    Registered,
    /// No longer registered; with the value its claimer delivered, if any.
    Left(Option<T>),
}

/// Owns a wait-queue registration while a blocking call waits; deregisters
/// (passing on a notification, withdrawing an offer) if the call leaves
/// abnormally, e.g. `park` unwinding at runtime shutdown.
struct Registration<'a, T> {
    chan: &'a Chan<T>,
    side: Side,
    id: Option<WaitId>,
    /// A receiver's hand-off slot (see `handoff`).
    slot: Option<&'a Slot<T>>,
    /// Registered as the fast waiter with `slot`, or claimed as such and
    /// not yet completed (see `fast`).
    fast: bool,
}

impl<T> Drop for Registration<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Nothing to undo on the usual ways out (the value was taken, or no
        // wait was registered): a test, not a call.
        if self.fast || self.id.is_some() {
            self.leave();
        }
    }
}

impl<T> Registration<'_, T> {
    /// Undoes what is still registered (see the type docs).
    #[inline(never)]
    fn leave(&mut self) {
        if self.fast
            && let Some(slot) = self.slot
        {
            self.chan.leave_fast(slot);
        }
        if let Some(id) = self.id.take() {
            match self.slot {
                Some(slot) => self.chan.leave_with_slot(id, slot),
                None => self.chan.leave(self.side, id),
            }
        }
    }
}

/// The sending half of a [`channel`]. Clone it for more producers.
///
/// ```
/// let (tx, rx) = gvthread::channel(2);
/// let tx2 = tx.clone();
/// tx.send(1).unwrap();
/// tx2.try_send(2).unwrap();
/// assert!(tx.try_send(3).unwrap_err().is_full());
/// assert_eq!((rx.recv(), rx.recv()), (Ok(1), Ok(2)));
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
    /// Registration of [`Sender::poll_send`] (per handle).
    reg: Option<WaitId>,
}

impl<T> Sender<T> {
    /// Sends `value`, parking while the channel is full (rendezvous: until a
    /// receiver takes it). Returns the value in `Err` once every receiver is
    /// gone.
    ///
    /// ```
    /// let (tx, rx) = gvthread::channel(1);
    /// tx.send("a").unwrap();
    /// drop(rx);
    /// assert_eq!(tx.send("b").unwrap_err().0, "b");
    /// ```
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.send_deadline(value, None).map_err(|e| SendError(e.into_inner()))
    }

    /// Sends `value` if that can be done without waiting: there is room
    /// (rendezvous: a receiver is blocked waiting for a value).
    ///
    /// ```
    /// use gvthread::TrySendError;
    /// let (tx, _rx) = gvthread::channel(0);
    /// assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.chan.send_step(&mut Some(value), &mut None, Wait::No) {
            SendStep::Sent => Ok(()),
            SendStep::Full(v) => Err(TrySendError::Full(v)),
            SendStep::Disconnected(v) => Err(TrySendError::Disconnected(v)),
            SendStep::Pending => unreachable!("Wait::No never queues"),
        }
    }

    /// Like [`send`](Self::send), but gives up after `timeout` and returns
    /// the value in [`SendTimeoutError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = gvthread::channel(1);
    /// tx.send(1).unwrap();
    /// assert!(tx.send_timeout(2, Duration::from_millis(2)).unwrap_err().is_timeout());
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send_deadline(value, deadline_after(timeout))
    }

    /// Like [`send`](Self::send), but gives up at `deadline`.
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send_deadline(value, Some(deadline))
    }

    /// Sends `value`, parking while the channel is full, but gives up with
    /// [`SendCancelError::Cancelled`] (handing the value back) as soon as
    /// `token` is cancelled. Pass the GVThread's own token (the spawn
    /// closure's argument, or [`current_token`](crate::current_token)) to
    /// make the send end with the GVThread's cancellation.
    ///
    /// A token that is already cancelled fails at once, without sending.
    ///
    /// ```
    /// use gvthread::{CancellationToken, SendCancelError};
    /// let (tx, _rx) = gvthread::channel(0); // nobody will ever receive
    /// let token = CancellationToken::new();
    /// let t = token.clone();
    /// std::thread::spawn(move || t.cancel());
    /// assert_eq!(tx.send_or_cancelled(7, &token), Err(SendCancelError::Cancelled(7)));
    /// ```
    pub fn send_or_cancelled(&self, value: T, token: &CancellationToken) -> Result<(), SendCancelError<T>> {
        if token.is_cancelled() {
            return Err(SendCancelError::Cancelled(value));
        }
        let mut send = SendArm::new(self, value);
        let mut cancel = CancelArm::new(token);
        let won = select::run(&mut [&mut send, &mut cancel], select::Mode::Block);
        match won {
            Some(0) => {
                send.take_result().expect("won arm has a result").map_err(|e| SendCancelError::Disconnected(e.0))
            }
            _ => Err(SendCancelError::Cancelled(send.into_value().expect("a losing send keeps its value"))),
        }
    }

    /// The channel's capacity: `Some(0)` for a rendezvous channel, `None` for
    /// an [`unbounded`] one.
    ///
    /// ```
    /// assert_eq!(gvthread::channel::<u8>(3).0.capacity(), Some(3));
    /// assert_eq!(gvthread::unbounded::<u8>().0.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Number of values queued in the channel (always 0 for a rendezvous
    /// channel: an offered value is not queued).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no value is queued.
    ///
    /// ```
    /// let (tx, rx) = gvthread::channel(2);
    /// assert!(tx.is_empty() && rx.is_empty());
    /// tx.send(1).unwrap();
    /// assert_eq!((tx.len(), rx.len()), (1, 1));
    /// assert!(!tx.is_empty() && !tx.is_full());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.chan.len() == 0
    }

    /// Whether the channel is full: `len() == capacity`. A rendezvous
    /// channel is always full; an unbounded one never.
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// Whether both handles belong to the same channel.
    ///
    /// ```
    /// let (a, _) = gvthread::channel::<u8>(1);
    /// let (b, _) = gvthread::channel::<u8>(1);
    /// assert!(a.same_channel(&a.clone()) && !a.same_channel(&b));
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Sender<T> {
    pub(crate) fn chan_addr(&self) -> *const () {
        Arc::as_ptr(&self.chan) as *const ()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.locked(|st| st.senders += 1);
        Sender { chan: self.chan.clone(), reg: None }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(id) = self.reg.take() {
            self.chan.leave(Side::Send, id);
        }
        let wake = self.chan.locked(|st| {
            st.senders -= 1;
            if st.senders != 0 {
                return None;
            }
            self.chan.senders_gone.store(true, Ordering::Relaxed);
            Some(st.recv_q.take_all())
        });
        if let Some(w) = wake {
            w.wake_all();
            // Dekker with a registering fast waiter's re-check (see `fast`).
            fence(Ordering::SeqCst);
            waitq::wake(self.chan.fast_poke());
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("capacity", &self.chan.capacity()).finish_non_exhaustive()
    }
}

/// The receiving half of a [`channel`]. Clone it for more consumers; each
/// value is received by exactly one of them.
///
/// Iterating (`for v in rx` / `for v in &rx` / [`iter`](Self::iter)) receives
/// until the channel is empty and every sender is gone.
///
/// ```
/// let (tx, rx) = gvthread::channel(4);
/// for i in 0..3 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// Registration of [`Receiver::poll_recv`] (per handle).
    reg: Option<WaitId>,
}

impl<T> Receiver<T> {
    /// Receives a value, parking while the channel is empty. `Err` once the
    /// channel is empty and every sender is gone (values sent before that are
    /// still delivered).
    ///
    /// ```
    /// let (tx, rx) = gvthread::channel(1);
    /// std::thread::spawn(move || tx.send(5).unwrap());
    /// assert_eq!(rx.recv(), Ok(5)); // parks this OS thread until it arrives
    /// assert!(rx.recv().is_err());
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv_deadline(None).map_err(|_| RecvError)
    }

    /// Receives a value if one is ready (rendezvous: a sender is offering one).
    ///
    /// ```
    /// use gvthread::TryRecvError;
    /// let (tx, rx) = gvthread::channel(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.chan.recv_step(&mut None, Wait::No) {
            RecvStep::Item(v) => Ok(v),
            RecvStep::Empty => Err(TryRecvError::Empty),
            RecvStep::Disconnected => Err(TryRecvError::Disconnected),
        }
    }

    /// Like [`recv`](Self::recv), but gives up after `timeout`.
    ///
    /// ```
    /// use gvthread::RecvTimeoutError;
    /// use std::time::Duration;
    /// let (_tx, rx) = gvthread::channel::<()>(1);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(2)), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv_deadline(deadline_after(timeout))
    }

    /// Like [`recv`](Self::recv), but gives up at `deadline`.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv_deadline(Some(deadline))
    }

    /// A blocking iterator: yields values until the channel is empty and
    /// every sender is gone.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// A non-blocking iterator: yields the values ready now.
    ///
    /// ```
    /// let (tx, rx) = gvthread::channel(4);
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]); // tx is still alive
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Receives a value, parking while the channel is empty, but gives up
    /// with [`RecvCancelError::Cancelled`] as soon as `token` is cancelled.
    /// Pass the GVThread's own token (the spawn closure's argument, or
    /// [`current_token`](crate::current_token)) to make the receive end with
    /// the GVThread's cancellation.
    ///
    /// A token that is already cancelled fails at once, without receiving;
    /// otherwise no value is lost: a value is either returned or stays in the
    /// channel.
    ///
    /// ```
    /// use gvthread::{RecvCancelError, Runtime, SchedulerConfig};
    /// let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    /// rt.block_on(|| {
    ///     let (_tx, rx) = gvthread::channel::<u32>(1);
    ///     let waiter = gvthread::spawn(move |token| rx.recv_or_cancelled(&token));
    ///     gvthread::yield_now(); // let it block
    ///     waiter.cancel();
    ///     assert_eq!(waiter.join().unwrap(), Err(RecvCancelError::Cancelled));
    /// });
    /// ```
    pub fn recv_or_cancelled(&self, token: &CancellationToken) -> Result<T, RecvCancelError> {
        if token.is_cancelled() {
            return Err(RecvCancelError::Cancelled);
        }
        let mut recv = RecvArm::new(self);
        let mut cancel = CancelArm::new(token);
        match select::run(&mut [&mut recv, &mut cancel], select::Mode::Block) {
            Some(0) => recv.take_result().expect("won arm has a result").map_err(|_| RecvCancelError::Disconnected),
            _ => Err(RecvCancelError::Cancelled),
        }
    }

    /// The channel's capacity: `Some(0)` for a rendezvous channel, `None` for
    /// an [`unbounded`] one.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Number of values queued in the channel (always 0 for a rendezvous
    /// channel: an offered value is not queued).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.chan.len() == 0
    }

    /// Whether the channel is full: `len() == capacity`. A rendezvous
    /// channel is always full; an unbounded one never.
    pub fn is_full(&self) -> bool {
        self.chan.is_full()
    }

    /// Whether both handles belong to the same channel.
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Receiver<T> {
    pub(crate) fn chan_addr(&self) -> *const () {
        Arc::as_ptr(&self.chan) as *const ()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.locked(|st| st.receivers += 1);
        Receiver { chan: self.chan.clone(), reg: None }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if let Some(id) = self.reg.take() {
            self.chan.leave(Side::Recv, id);
        }
        let rendezvous = self.chan.rendezvous();
        let disconnected = self.chan.locked(|st| {
            st.receivers -= 1;
            if st.receivers != 0 {
                return None;
            }
            self.chan.receivers_gone.store(true, Ordering::Relaxed);
            // Dekker with a fast sender that checked the flag before this
            // store: it sees the flag after its push, or the drain below sees
            // its value (see `try_fast_send`).
            fence(Ordering::SeqCst);
            // Disconnected: nobody will ever receive what is queued, except the
            // offers of blocked rendezvous senders, who take theirs back.
            let discarded: VecDeque<T> = if rendezvous {
                let mut kept = VecDeque::new();
                let mut kept_ids = VecDeque::new();
                let mut discarded = VecDeque::new();
                for (v, offer) in st.buf.q.drain(..).zip(st.offer_ids.drain(..)) {
                    if offer.from == 0 && st.send_q.contains(offer.id) {
                        kept.push_back(v);
                        kept_ids.push_back(offer);
                    } else {
                        discarded.push_back(v);
                    }
                }
                st.buf.q = kept;
                st.offer_ids = kept_ids;
                discarded
            } else {
                st.buf.drain_all()
            };
            Some((st.send_q.take_all(), discarded))
        });
        // Outside the lock and the runtime section: values' `Drop` is user code.
        if let Some((wake, discarded)) = disconnected {
            wake.wake_all();
            drop(discarded);
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("capacity", &self.chan.capacity()).finish_non_exhaustive()
    }
}

/// Blocking iterator over a [`Receiver`]'s values; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

/// Non-blocking iterator over a [`Receiver`]'s ready values; see
/// [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

/// Owning blocking iterator over a [`Receiver`]'s values (`for v in rx`).
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

#[cfg(test)]
mod tests;
