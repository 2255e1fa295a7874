//! Channel operations as select arms (see `sync::select` for the protocol).
//!
//! Registration and its readiness check happen under the channel's lock:
//!
//! * a receive is ready when a value (bounded, unbounded) or an offer
//!   (rendezvous) is queued, or every sender is gone;
//! * a send is ready when there is room (bounded; always for unbounded), when
//!   a receiver other than this select waits (rendezvous), or when every
//!   receiver is gone.
//!
//! A select's send arm on a rendezvous channel does not offer its value while
//! registered (it could be taken on two channels at once). Instead a receiver
//! that starts waiting with no offer queued claims one such select-sender
//! from the senders' queue and wakes it; that select's try pass then finds the
//! receiver waiting and commits the value to it (`try_send`'s path).

use super::{Chan, Receiver, RecvError, RecvStep, SendError, SendStep, Sender, Side, Wait, party_id};
use crate::sync::select::{SelectArm, SelectCtx};
use crate::sync::waitq::{self, WaitId};

/// A receive arm. Not part of the API (used by [`select!`](crate::select)).
#[doc(hidden)]
pub struct RecvArm<'a, T> {
    chan: &'a Chan<T>,
    reg: Option<WaitId>,
    result: Option<Result<T, RecvError>>,
}

impl<'a, T> RecvArm<'a, T> {
    /// An arm receiving from `rx`.
    pub fn new(rx: &'a Receiver<T>) -> Self {
        RecvArm { chan: &rx.chan, reg: None, result: None }
    }

    /// The result, once this arm completed.
    pub fn take_result(&mut self) -> Option<Result<T, RecvError>> {
        self.result.take()
    }

    pub(crate) fn chan_addr(&self) -> *const () {
        self.chan as *const Chan<T> as *const ()
    }

    pub(crate) fn result_ptr(&mut self) -> *mut Option<Result<T, RecvError>> {
        &mut self.result
    }
}

impl<T> SelectArm for RecvArm<'_, T> {
    fn try_complete(&mut self) -> bool {
        self.result = match self.chan.recv_step(&mut None, Wait::No) {
            RecvStep::Item(v) => Some(Ok(v)),
            RecvStep::Disconnected => Some(Err(RecvError)),
            RecvStep::Empty => None,
        };
        self.result.is_some()
    }

    fn register(&mut self, ctx: &SelectCtx, arm: usize) -> bool {
        let rendezvous = self.chan.rendezvous();
        let (reg, w) = self.chan.locked(|st| {
            if st.takeable(rendezvous).is_some() || st.senders == 0 {
                return (None, None);
            }
            let id = st.recv_q.push_select(ctx, arm);
            // Rendezvous: a select-sender may wait for a receiver. (No
            // blocked sender's offer is queued, or we would have taken it,
            // so `send_q` holds select-senders only.)
            let w = if rendezvous { st.send_q.pop_other(Some(ctx)) } else { None };
            (Some(id), w)
        });
        waitq::wake(w);
        self.reg = reg;
        if reg.is_some() && self.chan.recheck(Side::Recv) {
            // A fast-path send may have missed our entry (see `ring`).
            self.unregister(false);
            return false;
        }
        reg.is_some()
    }

    fn unregister(&mut self, pass_on: bool) {
        if let Some(id) = self.reg.take() {
            let w = self.chan.locked(|st| {
                if st.recv_q.remove(id).is_none() && pass_on && !st.buf.is_empty() { st.recv_q.pop() } else { None }
            });
            let w = if pass_on { self.chan.pass_on_fast(w) } else { w };
            waitq::wake(w);
        }
    }
}

/// A send arm holding its value. Not part of the API (used by
/// [`select!`](crate::select)).
#[doc(hidden)]
pub struct SendArm<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    reg: Option<WaitId>,
    /// Our entry was popped: we may have been notified of room, which a
    /// hand-off must pass on (extra wakes are harmless, missed ones not).
    notified: bool,
    result: Option<Result<(), SendError<T>>>,
}

impl<'a, T> SendArm<'a, T> {
    /// An arm sending `value` on `tx`.
    pub fn new(tx: &'a Sender<T>, value: T) -> Self {
        SendArm { chan: &tx.chan, value: Some(value), reg: None, notified: false, result: None }
    }

    /// The result, once this arm completed.
    pub fn take_result(&mut self) -> Option<Result<(), SendError<T>>> {
        self.result.take()
    }

    /// The value, if this arm did not send it.
    pub fn into_value(self) -> Option<T> {
        self.value
    }

    pub(crate) fn chan_addr(&self) -> *const () {
        self.chan as *const Chan<T> as *const ()
    }

    pub(crate) fn result_ptr(&mut self) -> *mut Option<Result<(), SendError<T>>> {
        &mut self.result
    }
}

impl<T> SelectArm for SendArm<'_, T> {
    fn try_complete(&mut self) -> bool {
        if self.value.is_none() {
            return self.result.is_some();
        }
        let notified = std::mem::take(&mut self.notified);
        match self.chan.send_step_from(&mut self.value, &mut None, Wait::No, party_id(), notified) {
            SendStep::Sent => self.result = Some(Ok(())),
            SendStep::Disconnected(v) => self.result = Some(Err(SendError(v))),
            SendStep::Full(v) => self.value = Some(v),
            SendStep::Pending => unreachable!("Wait::No never queues"),
        }
        self.result.is_some()
    }

    fn register(&mut self, ctx: &SelectCtx, arm: usize) -> bool {
        let rendezvous = self.chan.rendezvous();
        let reg = self.chan.locked(|st| {
            let ready = st.receivers == 0
                || if rendezvous {
                    st.recv_q.has_other(Some(ctx))
                } else {
                    st.buf.ring.as_ref().is_some_and(|r| !r.is_full())
                };
            (!ready).then(|| st.send_q.push_select(ctx, arm))
        });
        self.reg = reg;
        if reg.is_some() && self.chan.recheck(Side::Send) {
            // A fast-path receive may have missed our entry (see `ring`).
            self.unregister(false);
            return false;
        }
        reg.is_some()
    }

    fn unregister(&mut self, pass_on: bool) {
        if let Some(id) = self.reg.take() {
            let rendezvous = self.chan.rendezvous();
            let mut popped = false;
            let w = self.chan.locked(|st| {
                popped = st.send_q.remove(id).is_none();
                if !popped || !pass_on {
                    None
                } else if rendezvous {
                    // The receiver that claimed us still waits: let another
                    // select-sender serve it. Only while no offer is queued:
                    // then every entry of `send_q` is a select-sender (a
                    // blocked sender's entry stays until its offer is taken).
                    if st.recv_q.is_empty() || st.blocked_offers() { None } else { st.send_q.pop_other(None) }
                } else if st.buf.ring.as_ref().is_some_and(|r| !r.is_full()) {
                    st.send_q.pop()
                } else {
                    None
                }
            });
            self.notified = popped && !pass_on;
            waitq::wake(w);
        }
    }
}
