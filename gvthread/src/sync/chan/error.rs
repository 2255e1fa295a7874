//! Channel error types. They follow `std::sync::mpsc` and crossbeam-channel:
//! a failed send hands the value back, and `Debug` never needs `T: Debug`.

use std::error::Error;
use std::fmt;

/// [`Sender::send`](crate::Sender::send) failed: every receiver is gone.
/// The unsent value is returned.
///
/// ```
/// let (tx, rx) = gvthread::channel(1);
/// drop(rx);
/// assert_eq!(tx.send(7).unwrap_err().into_inner(), 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError { .. }")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a disconnected channel")
    }
}

impl<T> Error for SendError<T> {}

/// [`Sender::try_send`](crate::Sender::try_send) failed. The unsent value is
/// returned.
///
/// ```
/// use gvthread::TrySendError;
/// let (tx, rx) = gvthread::channel(1);
/// tx.try_send(1).unwrap();
/// assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
/// drop(rx);
/// assert!(tx.try_send(3).unwrap_err().is_disconnected());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full (for a rendezvous channel: no receiver is
    /// waiting right now).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> TrySendError<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }

    /// Whether the send failed because the channel was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }

    /// Whether the send failed because every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(e: SendError<T>) -> Self {
        TrySendError::Disconnected(e.0)
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T> Error for TrySendError<T> {}

/// [`Sender::send_timeout`](crate::Sender::send_timeout) failed. The unsent
/// value is returned.
///
/// ```
/// use gvthread::SendTimeoutError;
/// use std::time::Duration;
/// let (tx, _rx) = gvthread::channel(0); // nobody receives
/// let e = tx.send_timeout("x", Duration::from_millis(1)).unwrap_err();
/// assert!(e.is_timeout());
/// assert_eq!(e.into_inner(), "x");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendTimeoutError<T> {
    /// No room (or, for a rendezvous channel, no receiver) before the
    /// timeout elapsed.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> SendTimeoutError<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }

    /// Whether the send timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }

    /// Whether the send failed because every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(e: SendError<T>) -> Self {
        SendTimeoutError::Disconnected(e.0)
    }
}

impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T> Error for SendTimeoutError<T> {}

/// [`Receiver::recv`](crate::Receiver::recv) failed: the channel is empty
/// and every sender is gone.
///
/// ```
/// let (tx, rx) = gvthread::channel::<u8>(1);
/// drop(tx);
/// assert_eq!(rx.recv(), Err(gvthread::RecvError));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError;

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected channel")
    }
}

impl Error for RecvError {}

/// [`Receiver::try_recv`](crate::Receiver::try_recv) failed.
///
/// ```
/// use gvthread::TryRecvError;
/// let (tx, rx) = gvthread::channel::<u8>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing to receive right now (for a rendezvous channel: no sender is
    /// offering a value).
    Empty,
    /// The channel is empty and every sender is gone.
    Disconnected,
}

impl TryRecvError {
    /// Whether the channel was merely empty.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }

    /// Whether the channel is empty and every sender is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => f.write_str("receiving on an empty and disconnected channel"),
        }
    }
}

impl Error for TryRecvError {}

/// [`Receiver::recv_timeout`](crate::Receiver::recv_timeout) failed.
///
/// ```
/// use gvthread::RecvTimeoutError;
/// use std::time::Duration;
/// let (_tx, rx) = gvthread::channel::<u8>(1);
/// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Nothing arrived before the timeout elapsed.
    Timeout,
    /// The channel is empty and every sender is gone.
    Disconnected,
}

impl RecvTimeoutError {
    /// Whether the receive timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }

    /// Whether the channel is empty and every sender is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Disconnected => f.write_str("receiving on an empty and disconnected channel"),
        }
    }
}

impl Error for RecvTimeoutError {}

/// [`Sender::send_or_cancelled`](crate::Sender::send_or_cancelled) failed.
/// The unsent value is returned.
///
/// ```
/// use gvthread::{CancellationToken, SendCancelError};
/// let (tx, rx) = gvthread::channel(1);
/// let token = CancellationToken::new();
/// drop(rx);
/// assert!(tx.send_or_cancelled(1, &token).unwrap_err().is_disconnected());
/// token.cancel();
/// assert_eq!(tx.send_or_cancelled(2, &token), Err(SendCancelError::Cancelled(2)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendCancelError<T> {
    /// The token was cancelled before the value could be sent.
    Cancelled(T),
    /// Every receiver is gone.
    Disconnected(T),
}

impl<T> SendCancelError<T> {
    /// The value that could not be sent.
    pub fn into_inner(self) -> T {
        match self {
            SendCancelError::Cancelled(v) | SendCancelError::Disconnected(v) => v,
        }
    }

    /// Whether the send gave up because the token was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, SendCancelError::Cancelled(_))
    }

    /// Whether the send failed because every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendCancelError::Disconnected(_))
    }
}

impl<T> From<SendError<T>> for SendCancelError<T> {
    fn from(e: SendError<T>) -> Self {
        SendCancelError::Disconnected(e.0)
    }
}

impl<T> fmt::Debug for SendCancelError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendCancelError::Cancelled(_) => f.write_str("Cancelled(..)"),
            SendCancelError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendCancelError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendCancelError::Cancelled(_) => f.write_str("sending was cancelled"),
            SendCancelError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}

impl<T> Error for SendCancelError<T> {}

/// [`Receiver::recv_or_cancelled`](crate::Receiver::recv_or_cancelled)
/// failed.
///
/// ```
/// use gvthread::{CancellationToken, RecvCancelError};
/// let (tx, rx) = gvthread::channel::<u8>(1);
/// let token = CancellationToken::new();
/// token.cancel();
/// assert_eq!(rx.recv_or_cancelled(&token), Err(RecvCancelError::Cancelled));
/// drop(tx);
/// assert!(rx.recv_or_cancelled(&CancellationToken::new()).unwrap_err().is_disconnected());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecvCancelError {
    /// The token was cancelled before a value arrived.
    Cancelled,
    /// The channel is empty and every sender is gone.
    Disconnected,
}

impl RecvCancelError {
    /// Whether the receive gave up because the token was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, RecvCancelError::Cancelled)
    }

    /// Whether the receive failed because the channel is empty and every
    /// sender is gone.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvCancelError::Disconnected)
    }
}

impl From<RecvError> for RecvCancelError {
    fn from(_: RecvError) -> Self {
        RecvCancelError::Disconnected
    }
}

impl fmt::Display for RecvCancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvCancelError::Cancelled => f.write_str("receiving was cancelled"),
            RecvCancelError::Disconnected => f.write_str("receiving on an empty and disconnected channel"),
        }
    }
}

impl Error for RecvCancelError {}
