//! Channels from async code: a [`Receiver`] as a `Stream`, a [`Sender`] as a
//! `Sink`.
//!
//! Both adapters are thin wrappers over the channel's poll functions
//! ([`Receiver::poll_recv`], [`Sender::poll_send`]), which register the
//! task's `Waker` in the channel's wait queues: an executor thread is never
//! blocked. For single operations the channel also has `recv_async()` and
//! `send_async(v)` futures.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::sink::Sink;
use futures::stream::{FusedStream, Stream};
use gvthread::{Receiver, SendError, Sender};

/// A [`Receiver`] as a [`Stream`] of its values; the stream ends once the
/// channel is empty and every sender (and [`SendSink`]) is gone.
///
/// Each stream has its own registration in the channel: to consume one
/// channel from several tasks, give each its own clone of the `Receiver`.
///
/// ```
/// use futures::StreamExt;
/// use gvthread_futures::ReceiverExt;
///
/// let (tx, rx) = gvthread::channel(4);
/// std::thread::spawn(move || (1..=3).for_each(|i| tx.send(i).unwrap()));
/// let all: Vec<i32> = gvthread_futures::block_on(rx.into_stream().collect());
/// assert_eq!(all, [1, 2, 3]);
/// ```
pub struct RecvStream<T> {
    rx: Receiver<T>,
    done: bool,
}

impl<T> RecvStream<T> {
    /// Wraps `rx`.
    pub fn new(rx: Receiver<T>) -> RecvStream<T> {
        RecvStream { rx, done: false }
    }

    /// The receiver back (for example, to `recv()` from blocking code).
    pub fn into_inner(self) -> Receiver<T> {
        self.rx
    }
}

impl<T> Stream for RecvStream<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let next = this.rx.poll_recv(cx);
        if let Poll::Ready(None) = next {
            this.done = true;
        }
        next
    }
}

impl<T> FusedStream for RecvStream<T> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<T> From<Receiver<T>> for RecvStream<T> {
    fn from(rx: Receiver<T>) -> RecvStream<T> {
        RecvStream::new(rx)
    }
}

impl<T> fmt::Debug for RecvStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvStream").field("done", &self.done).finish_non_exhaustive()
    }
}

/// A [`Sender`] as a [`Sink`].
///
/// `start_send` stores one item; `poll_ready` and `poll_flush` complete its
/// send (waiting while the channel is full, or, for a rendezvous channel,
/// until a receiver took it). The error hands back an item no receiver will
/// ever get because every receiver is gone.
///
/// `poll_close` flushes and then drops the sender, so receivers see the end
/// of the stream once every other sender is gone too; after that, sending
/// fails with the item handed back.
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use gvthread_futures::SenderExt;
///
/// let (tx, rx) = gvthread::channel(0); // rendezvous: each send waits for a receiver
/// let consumer = std::thread::spawn(move || rx.into_iter().sum::<u32>());
/// gvthread_futures::block_on(async move {
///     let mut sink = tx.into_sink();
///     sink.send_all(&mut futures::stream::iter(1..=4).map(Ok)).await.unwrap();
///     sink.close().await.unwrap(); // the receiver's iterator ends
/// });
/// assert_eq!(consumer.join().unwrap(), 10);
/// ```
pub struct SendSink<T> {
    tx: Option<Sender<T>>,
    /// The item of the send in progress, while the channel has not taken it.
    slot: Option<T>,
}

// The item is never pinned: it only moves in and out through `&mut`.
impl<T> Unpin for SendSink<T> {}

impl<T> SendSink<T> {
    /// Wraps `tx`.
    pub fn new(tx: Sender<T>) -> SendSink<T> {
        SendSink { tx: Some(tx), slot: None }
    }

    /// The sender back, or `None` if the sink was closed. An item stored by
    /// `start_send` and not yet flushed is dropped.
    pub fn into_inner(self) -> Option<Sender<T>> {
        self.tx
    }

    /// Completes the send in progress, if any.
    fn poll_flush_slot(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        match &mut self.tx {
            Some(tx) => tx.poll_send(cx, &mut self.slot),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<T> Sink<T> for SendSink<T> {
    type Error = SendError<T>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        self.get_mut().poll_flush_slot(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), SendError<T>> {
        let this = self.get_mut();
        if this.tx.is_none() {
            return Err(SendError(item));
        }
        assert!(this.slot.is_none(), "SendSink::start_send called without a successful poll_ready");
        this.slot = Some(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        self.get_mut().poll_flush_slot(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError<T>>> {
        let this = self.get_mut();
        let flushed = futures::ready!(this.poll_flush_slot(cx));
        this.tx = None;
        Poll::Ready(flushed)
    }
}

impl<T> From<Sender<T>> for SendSink<T> {
    fn from(tx: Sender<T>) -> SendSink<T> {
        SendSink::new(tx)
    }
}

impl<T> fmt::Debug for SendSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendSink")
            .field("closed", &self.tx.is_none())
            .field("sending", &self.slot.is_some())
            .finish_non_exhaustive()
    }
}

/// Async adapters for [`Receiver`].
pub trait ReceiverExt<T> {
    /// This receiver as a [`Stream`] (see [`RecvStream`]).
    fn into_stream(self) -> RecvStream<T>;
}

impl<T> ReceiverExt<T> for Receiver<T> {
    fn into_stream(self) -> RecvStream<T> {
        RecvStream::new(self)
    }
}

/// Async adapters for [`Sender`].
pub trait SenderExt<T> {
    /// This sender as a [`Sink`] (see [`SendSink`]).
    fn into_sink(self) -> SendSink<T>;
}

impl<T> SenderExt<T> for Sender<T> {
    fn into_sink(self) -> SendSink<T> {
        SendSink::new(self)
    }
}
