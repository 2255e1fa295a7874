//! Async access to channels: futures and poll functions that register the
//! task's `Waker` in the channel's wait queues instead of parking.
//!
//! They reuse the blocking operations' step functions with
//! `Wait::Task(waker)`, so the protocol (and its no-lost-wake argument) is
//! the one described in the parent module. What is specific here is
//! cancellation: a future or handle that is dropped while registered calls
//! `Chan::leave`, which removes the registration, passes on a notification it
//! had received but not used, and withdraws a rendezvous offer (dropping the
//! value, which the dropped future owned).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{Chan, Receiver, RecvError, RecvStep, SendError, SendStep, Sender, Side, Wait};
use crate::sync::waitq::WaitId;

impl<T> Receiver<T> {
    /// Receives a value from async code without blocking the executor
    /// thread: the returned future resolves to the next value, or to
    /// `Err(RecvError)` once the channel is empty and every sender is gone.
    ///
    /// Dropping the future before it completes is safe: it deregisters and
    /// no value is lost (a wake it received is passed on to another
    /// receiver).
    ///
    /// ```
    /// use gvthread_futures::block_on; // or any executor: tokio, futures, ...
    ///
    /// let (tx, rx) = gvthread::channel(1);
    /// std::thread::spawn(move || tx.send(42).unwrap());
    /// assert_eq!(block_on(rx.recv_async()), Ok(42));
    /// assert!(block_on(rx.recv_async()).is_err());
    /// ```
    pub fn recv_async(&self) -> RecvFut<'_, T> {
        RecvFut { chan: &self.chan, reg: None }
    }

    /// Polls for the next value: the building block for a `Stream`.
    ///
    /// `Ready(Some(v))` is the next value, `Ready(None)` means the channel is
    /// empty and every sender is gone, and `Pending` means the task's waker
    /// (from `cx`) is registered and will be woken when a value may be
    /// available. The registration belongs to this handle (hence `&mut
    /// self`; clone the `Receiver` for each task that polls), is refreshed by
    /// every poll, and is removed when a value is returned or the handle is
    /// dropped.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// let (tx, mut rx) = gvthread::channel(1);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
    /// drop(tx);
    /// assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.chan.recv_step(&mut self.reg, Wait::Task(cx.waker())) {
            RecvStep::Item(v) => Poll::Ready(Some(v)),
            RecvStep::Disconnected => Poll::Ready(None),
            RecvStep::Empty => Poll::Pending,
        }
    }
}

impl<T> Sender<T> {
    /// Sends `value` from async code without blocking the executor thread:
    /// the returned future resolves once the value is in the channel
    /// (rendezvous: once a receiver took it), or to `Err(SendError(value))`
    /// if every receiver is gone.
    ///
    /// Dropping the future before it completes cancels the send: the value
    /// is dropped with it, unless a receiver already took it (rendezvous),
    /// in which case the send happened. A wake it received is passed on.
    ///
    /// ```
    /// use gvthread_futures::block_on; // or any executor: tokio, futures, ...
    ///
    /// let (tx, rx) = gvthread::channel(0); // rendezvous
    /// let t = std::thread::spawn(move || rx.recv().unwrap());
    /// block_on(tx.send_async("hi")).unwrap();
    /// assert_eq!(t.join().unwrap(), "hi");
    /// ```
    pub fn send_async(&self, value: T) -> SendFut<'_, T> {
        SendFut { chan: &self.chan, value: Some(value), reg: None }
    }

    /// Drives a send from async code: the building block for a `Sink`.
    ///
    /// Pass the value to send in `value`. The channel takes it out of `value`
    /// when it accepts it. `Ready(Ok(()))` means the send completed (for a
    /// rendezvous channel: a receiver took the value); `Ready(Err(e))`
    /// returns the value because every receiver is gone; `Pending` means the
    /// task's waker is registered: poll again, with the *same* `value` slot,
    /// until `Ready`. While `Pending`, `value` still holds the value for a
    /// bounded channel (the channel is full) and is empty for a rendezvous
    /// channel (the value is offered to receivers); in the rendezvous case
    /// the value cannot be changed any more, and dropping the `Sender`
    /// cancels the offer. Polling with an empty slot and no send in progress
    /// returns `Ready(Ok(()))`.
    ///
    /// The registration belongs to this handle (hence `&mut self`; clone the
    /// `Sender` for each task).
    ///
    /// A `Sink` keeps one `Option<T>`: `start_send` stores the item in it,
    /// and `poll_ready`/`poll_flush` call `poll_send` until the slot is empty
    /// and it returns `Ready`.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// let (mut tx, rx) = gvthread::channel(1);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut slot = Some(1);
    /// assert!(tx.poll_send(&mut cx, &mut slot).is_ready() && slot.is_none());
    /// let mut slot = Some(2);
    /// assert!(tx.poll_send(&mut cx, &mut slot).is_pending() && slot == Some(2)); // full
    /// assert_eq!(rx.recv(), Ok(1));
    /// assert!(tx.poll_send(&mut cx, &mut slot).is_ready() && slot.is_none());
    /// ```
    pub fn poll_send(&mut self, cx: &mut Context<'_>, value: &mut Option<T>) -> Poll<Result<(), SendError<T>>> {
        match self.chan.send_step(value, &mut self.reg, Wait::Task(cx.waker())) {
            SendStep::Sent => Poll::Ready(Ok(())),
            SendStep::Disconnected(v) | SendStep::Full(v) => Poll::Ready(Err(SendError(v))),
            SendStep::Pending => Poll::Pending,
        }
    }
}

/// Future returned by [`Receiver::recv_async`].
#[must_use = "futures do nothing unless polled"]
pub struct RecvFut<'a, T> {
    chan: &'a Chan<T>,
    reg: Option<WaitId>,
}

impl<T> Future for RecvFut<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.chan.recv_step(&mut this.reg, Wait::Task(cx.waker())) {
            RecvStep::Item(v) => Poll::Ready(Ok(v)),
            RecvStep::Disconnected => Poll::Ready(Err(RecvError)),
            RecvStep::Empty => Poll::Pending,
        }
    }
}

impl<T> Drop for RecvFut<'_, T> {
    fn drop(&mut self) {
        if let Some(id) = self.reg.take() {
            self.chan.leave(Side::Recv, id);
        }
    }
}

impl<T> fmt::Debug for RecvFut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFut").field("registered", &self.reg.is_some()).finish()
    }
}

/// Future returned by [`Sender::send_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFut<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    reg: Option<WaitId>,
}

// The value is never pinned: it is only moved in and out through `&mut`.
impl<T> Unpin for SendFut<'_, T> {}

impl<T> Future for SendFut<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(this.value.is_some() || this.reg.is_some(), "SendFut polled after completion");
        match this.chan.send_step(&mut this.value, &mut this.reg, Wait::Task(cx.waker())) {
            SendStep::Sent => Poll::Ready(Ok(())),
            SendStep::Disconnected(v) | SendStep::Full(v) => Poll::Ready(Err(SendError(v))),
            SendStep::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for SendFut<'_, T> {
    fn drop(&mut self) {
        if let Some(id) = self.reg.take() {
            self.chan.leave(Side::Send, id);
        }
    }
}

impl<T> fmt::Debug for SendFut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFut").field("registered", &self.reg.is_some()).finish_non_exhaustive()
    }
}
