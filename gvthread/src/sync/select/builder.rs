//! [`Select`]: the dynamic form of [`select!`](crate::select), for a set of
//! operations whose size is known only at run time.

use std::error::Error;
use std::fmt;
use std::time::{Duration, Instant};

use super::{Mode, SelectArm, run};
use crate::sync::cancel::{CancelArm, CancellationToken};
use crate::sync::chan::{Receiver, RecvArm, RecvError, SendArm, SendError, Sender};

/// What an operation of a [`Select`] is, and on which channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Recv(*const ()),
    Send(*const ()),
    Cancelled,
}

/// A type-erased arm that can hand its typed result back.
trait Op: SelectArm {
    fn kind(&self) -> Kind;
    /// The arm's result slot; its type is given by `kind` (see
    /// [`SelectedOperation::recv`]).
    fn result_slot(&mut self) -> *mut ();
}

impl<T> Op for RecvArm<'_, T> {
    fn kind(&self) -> Kind {
        Kind::Recv(self.chan_addr())
    }
    fn result_slot(&mut self) -> *mut () {
        self.result_ptr().cast()
    }
}

impl<T> Op for SendArm<'_, T> {
    fn kind(&self) -> Kind {
        Kind::Send(self.chan_addr())
    }
    fn result_slot(&mut self) -> *mut () {
        self.result_ptr().cast()
    }
}

impl Op for CancelArm<'_> {
    fn kind(&self) -> Kind {
        Kind::Cancelled
    }
    fn result_slot(&mut self) -> *mut () {
        std::ptr::null_mut()
    }
}

/// Waits on a run-time list of operations and completes exactly one: the
/// dynamic form of [`select!`](crate::select), in the shape of
/// crossbeam-channel's `Select`.
///
/// Add operations with [`recv`](Self::recv), [`send`](Self::send) and
/// [`cancelled`](Self::cancelled) (each returns the operation's index), then
/// call [`select`](Self::select) (or [`try_select`](Self::try_select),
/// [`select_timeout`](Self::select_timeout)). The returned
/// [`SelectedOperation`] names the operation that completed; its
/// [`recv`](SelectedOperation::recv) / [`send`](SelectedOperation::send)
/// hand back the result.
///
/// Unlike crossbeam's, the selected operation has already happened when
/// `select` returns (a send's value is given to [`send`](Self::send) up
/// front, and stays with the `Select` if another operation wins). A
/// received value that is not collected is dropped with the `Select`.
///
/// The same fairness and guarantees as `select!`: among ready operations
/// one is chosen at random; exactly one completes.
///
/// ```
/// use gvthread::Select;
/// let channels: Vec<_> = (0..4).map(|_| gvthread::channel::<usize>(1)).collect();
/// channels[2].0.send(20).unwrap();
///
/// let mut sel = Select::new();
/// for (_, rx) in &channels {
///     sel.recv(rx);
/// }
/// let op = sel.select();
/// let i = op.index();
/// assert_eq!(i, 2);
/// assert_eq!(op.recv(&channels[i].1), Ok(20));
/// ```
#[derive(Default)]
pub struct Select<'a> {
    ops: Vec<Box<dyn Op + 'a>>,
}

impl<'a> Select<'a> {
    /// An empty select.
    pub fn new() -> Select<'a> {
        Select { ops: Vec::new() }
    }

    /// Adds a receive on `rx`; returns its index.
    pub fn recv<T>(&mut self, rx: &'a Receiver<T>) -> usize {
        self.ops.push(Box::new(RecvArm::new(rx)));
        self.ops.len() - 1
    }

    /// Adds a send of `value` on `tx`; returns its index.
    pub fn send<T>(&mut self, tx: &'a Sender<T>, value: T) -> usize {
        self.ops.push(Box::new(SendArm::new(tx, value)));
        self.ops.len() - 1
    }

    /// Adds a wait for `token`'s cancellation; returns its index.
    pub fn cancelled(&mut self, token: &'a CancellationToken) -> usize {
        self.ops.push(Box::new(CancelArm::new(token)));
        self.ops.len() - 1
    }

    fn run(&mut self, mode: Mode) -> Option<usize> {
        let mut arms: Vec<&mut dyn SelectArm> = self.ops.iter_mut().map(|op| &mut **op as &mut dyn SelectArm).collect();
        run(&mut arms, mode)
    }

    /// Waits until one operation completes. With no operations, waits forever
    /// (until runtime shutdown), like an empty Go `select {}`.
    pub fn select(&mut self) -> SelectedOperation<'_, 'a> {
        let index = self.run(Mode::Block).expect("a blocking select always completes an operation");
        SelectedOperation { sel: self, index }
    }

    /// Completes an operation that is ready now, if any.
    ///
    /// ```
    /// let (tx, rx) = gvthread::channel::<u8>(1);
    /// let mut sel = gvthread::Select::new();
    /// sel.recv(&rx);
    /// assert!(sel.try_select().is_err());
    /// tx.send(1).unwrap();
    /// assert_eq!(sel.try_select().unwrap().recv(&rx), Ok(1));
    /// ```
    pub fn try_select(&mut self) -> Result<SelectedOperation<'_, 'a>, TrySelectError> {
        match self.run(Mode::NonBlocking) {
            Some(index) => Ok(SelectedOperation { sel: self, index }),
            None => Err(TrySelectError),
        }
    }

    /// Waits at most `timeout` for an operation to complete.
    pub fn select_timeout(&mut self, timeout: Duration) -> Result<SelectedOperation<'_, 'a>, SelectTimeoutError> {
        self.select_until(Instant::now().checked_add(timeout))
    }

    /// Waits until `deadline` at most for an operation to complete.
    pub fn select_deadline(&mut self, deadline: Instant) -> Result<SelectedOperation<'_, 'a>, SelectTimeoutError> {
        self.select_until(Some(deadline))
    }

    fn select_until(&mut self, deadline: Option<Instant>) -> Result<SelectedOperation<'_, 'a>, SelectTimeoutError> {
        match self.run(Mode::Deadline(deadline)) {
            Some(index) => Ok(SelectedOperation { sel: self, index }),
            None => Err(SelectTimeoutError),
        }
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select").field("operations", &self.ops.len()).finish()
    }
}

/// The operation a [`Select`] completed.
#[must_use = "the result of a received value or a failed send is in the SelectedOperation"]
pub struct SelectedOperation<'s, 'a> {
    sel: &'s mut Select<'a>,
    index: usize,
}

impl SelectedOperation<'_, '_> {
    /// The index of the completed operation (as returned when it was added).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The result of the completed receive.
    ///
    /// # Panics
    ///
    /// If the completed operation is not a receive on `rx`'s channel.
    pub fn recv<T>(self, rx: &Receiver<T>) -> Result<T, RecvError> {
        let op = &mut self.sel.ops[self.index];
        assert!(
            op.kind() == Kind::Recv(rx.chan_addr()),
            "SelectedOperation::recv: the selected operation is not a receive on this channel"
        );
        let slot = op.result_slot().cast::<Option<Result<T, RecvError>>>();
        // SAFETY: the arm receives on the channel at `rx`'s address, a live
        // `Chan<T>` (both the arm and `rx` hold it), so the arm is a
        // `RecvArm<'_, T>` for this very `T` and `slot` is its result field.
        let result = unsafe { (*slot).take() };
        result.expect("the completed operation's result was already taken")
    }

    /// The result of the completed send.
    ///
    /// # Panics
    ///
    /// If the completed operation is not a send on `tx`'s channel.
    pub fn send<T>(self, tx: &Sender<T>) -> Result<(), SendError<T>> {
        let op = &mut self.sel.ops[self.index];
        assert!(
            op.kind() == Kind::Send(tx.chan_addr()),
            "SelectedOperation::send: the selected operation is not a send on this channel"
        );
        let slot = op.result_slot().cast::<Option<Result<(), SendError<T>>>>();
        // SAFETY: as in `recv`: the arm is a `SendArm<'_, T>` on `tx`'s
        // channel, so `slot` is its result field of this type.
        let result = unsafe { (*slot).take() };
        result.expect("the completed operation's result was already taken")
    }
}

impl fmt::Debug for SelectedOperation<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectedOperation").field("index", &self.index).finish()
    }
}

/// [`Select::try_select`] found no operation ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrySelectError;

impl fmt::Display for TrySelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no operation was ready")
    }
}

impl Error for TrySelectError {}

/// [`Select::select_timeout`] timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectTimeoutError;

impl fmt::Display for SelectTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting on select")
    }
}

impl Error for SelectTimeoutError {}
