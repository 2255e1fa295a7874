//! Hierarchical cancellation tokens.
//!
//! A token is a node in a tree: cancelling a node cancels its whole subtree.
//! Parents keep weak references to children, so dropping a child subtree
//! frees it; dead entries are pruned when a parent's child list grows.
//! Children keep strong references to their parents, so a dropped token in
//! the middle of a chain still passes its ancestors' cancellation on.
//!
//! Cancellation is cooperative: code checks [`CancellationToken::is_cancelled`],
//! or waits for it: a `cancelled(token)` arm of [`select!`](crate::select),
//! [`Receiver::recv_or_cancelled`](crate::Receiver::recv_or_cancelled),
//! [`Sender::send_or_cancelled`](crate::Sender::send_or_cancelled) and
//! [`sleep_or_cancelled`] return as soon as the token is cancelled.
//!
//! # Lazy registration
//!
//! A child enters its parent's child list only when something first asks
//! it (`is_cancelled`, a wait for it), not when it is made: every GVThread
//! gets a child token at its spawn, and most never look at it. Until then
//! its own flag says only whether it was cancelled itself. Registration
//! goes top down through the chain of unregistered ancestors, each step
//! under its parent's lock, where it reads the parent's flag: `cancel` sets
//! the flag before it takes the lock to empty the list, so the child either
//! sees the flag (and takes it over) or is in the list that `cancel`
//! empties. A registered node's flag is then authoritative. Spawning thus
//! costs no lock and no list entry, and a million short-lived GVThreads
//! leave nothing to prune in their parent.
//!
//! # Lazy nodes
//!
//! A GVThread's own token does not even get a node at its spawn: it is a
//! reference to a [`LazyNode`] kept in the GVThread's join state (which the
//! spawn allocates anyway), holding the parent's node. The node is made the
//! first time something needs it (a `cancel`, a child, a wait); until then
//! the token is cancelled exactly when its parent is, so `is_cancelled`
//! asks the parent. `cancel` makes the node before it sets its flag, and
//! the node is published (Release) before anyone can see the flag, so a
//! reader that finds no node has not missed a cancellation of this token.
//!
//! # Waiting for cancellation
//!
//! Each node has a [`WaitQueue`] of waiters (select arms) next to its child
//! list, under the same lock. A waiter registers under the lock only if the
//! flag is still clear; `cancel` sets the flag *before* taking the lock and
//! emptying the queue. So a waiter either sees the flag or is in the queue
//! that `cancel` empties; the wakes run after the lock is released. Both
//! critical sections are runtime sections, so a GVThread frozen by forced
//! preemption never holds the lock.

use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::select::{self, SelectArm, SelectCtx};
use super::waitq::{WaitId, WaitQueue};
use crate::sched::machine::in_section;
use crate::task::join::CoreRef;
use crate::util::lazy_box::LazyBox;

struct Node {
    cancelled: AtomicBool,
    /// In its parent's child list (roots: always). Set under the parent's
    /// lock (see "Lazy registration").
    registered: AtomicBool,
    inner: Mutex<Inner>,
    /// Keeps the ancestors alive while a descendant lives, so cancelling an
    /// ancestor reaches it even when the tokens in between were dropped
    /// (parents only hold weak references to children).
    parent: Option<Arc<Node>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        // Unlink the ancestor chain iteratively: a long chain of tokens
        // (spawns from spawns) must not recurse once per level.
        let mut next = self.parent.take();
        while let Some(p) = next {
            next = Arc::into_inner(p).and_then(|mut n| n.parent.take());
        }
    }
}

struct Inner {
    children: Vec<Weak<Node>>,
    waiters: WaitQueue,
}

impl Node {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No user code runs under this lock.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cancellation flag shared by clones and inherited by children.
///
/// Every GVThread gets a token that is a child of its spawner's token (the
/// runtime's root token at the top); dropping the runtime cancels the root.
///
/// ```
/// use gvthread::CancellationToken;
/// let parent = CancellationToken::new();
/// let child = parent.child();
/// let grandchild = child.child();
/// parent.cancel();
/// assert!(child.is_cancelled() && grandchild.is_cancelled());
/// ```
///
/// # Waiting until cancelled
///
/// Blocking calls that return early on cancellation take the token:
/// [`sleep_or_cancelled`],
/// [`Receiver::recv_or_cancelled`](crate::Receiver::recv_or_cancelled),
/// [`Sender::send_or_cancelled`](crate::Sender::send_or_cancelled), and the
/// `cancelled(token)` arm of [`select!`](crate::select!) for anything else.
/// [`JoinHandle::cancel`](crate::JoinHandle::cancel) cancels the token a
/// spawned GVThread was given.
///
/// ```
/// use std::time::Duration;
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// rt.block_on(|| {
///     let (_tx, rx) = gvthread::channel::<u32>(1);
///     let waiter = gvthread::spawn(move |token| {
///         gvthread::select! {
///             recv(rx) -> msg => msg.ok(),
///             cancelled(token) => None,
///         }
///     });
///     gvthread::sleep(Duration::from_millis(1));
///     waiter.cancel();
///     assert_eq!(waiter.join().unwrap(), None);
/// });
/// ```
#[derive(Clone)]
pub struct CancellationToken {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Node(Arc<Node>),
    /// A GVThread's own token, its node made on first need (see "Lazy
    /// nodes"), in the GVThread's join state.
    Lazy(CoreRef),
}

// Tokens were `Send`, `Sync` and unwind safe with a plain node; they stay so.
const _: () = {
    const fn assert_traits<X: Send + Sync + Unpin + UnwindSafe + RefUnwindSafe>() {}
    assert_traits::<CancellationToken>();
    assert_traits::<LazyNode>();
};

/// The node of a GVThread's token, made on first need (see "Lazy nodes").
///
/// Two words, as it sits in every join state: the parent's node, and the
/// node once made (boxed: only tokens that are cancelled, waited for or
/// given children pay for the box).
pub(crate) struct LazyNode {
    node: LazyBox<Arc<Node>>,
    parent: Arc<Node>,
}

impl LazyNode {
    /// A token node to be, a child of `parent`'s.
    pub(crate) fn child_of(parent: &CancellationToken) -> LazyNode {
        LazyNode { node: LazyBox::new(), parent: parent.node().clone() }
    }

    /// The node, made now if it was not yet (never waits for another
    /// maker: see `LazyBox`).
    fn get(&self) -> &Arc<Node> {
        self.node.get_or_make(|| Arc::new(Node::new(Some(self.parent.clone()))))
    }

    /// Cancels the token.
    pub(crate) fn cancel(&self) {
        cancel_node(self.get());
    }

    fn is_cancelled(&self) -> bool {
        // No node yet: never cancelled itself, so it is as its parent is.
        is_cancelled_node(self.node.get().unwrap_or(&self.parent))
    }
}

impl Default for CancellationToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancellationToken {
    /// A new root token.
    pub fn new() -> CancellationToken {
        CancellationToken::with_parent(None)
    }

    fn with_parent(parent: Option<Arc<Node>>) -> CancellationToken {
        CancellationToken { repr: Repr::Node(Arc::new(Node::new(parent))) }
    }

    /// The token of a spawned GVThread, whose node its join state makes on
    /// first need.
    pub(crate) fn lazy(state: CoreRef) -> CancellationToken {
        CancellationToken { repr: Repr::Lazy(state) }
    }

    /// The node, made now if this is a lazy token without one yet.
    fn node(&self) -> &Arc<Node> {
        match &self.repr {
            Repr::Node(n) => n,
            Repr::Lazy(h) => h.token().get(),
        }
    }

    /// A new token cancelled when `self` is (or already cancelled if `self` is).
    pub fn child(&self) -> CancellationToken {
        self.child_inner()
    }

    /// [`child`](Self::child); takes no lock (see "Lazy registration"), so
    /// it may run inside a runtime section.
    pub(crate) fn child_inner(&self) -> CancellationToken {
        CancellationToken::with_parent(Some(self.node().clone()))
    }

    /// Cancels this token and every descendant, waking whoever waits for
    /// their cancellation.
    pub fn cancel(&self) {
        cancel_node(self.node());
    }

    /// Whether this token (or an ancestor) was cancelled.
    pub fn is_cancelled(&self) -> bool {
        match &self.repr {
            Repr::Node(n) => is_cancelled_node(n),
            Repr::Lazy(h) => h.token().is_cancelled(),
        }
    }
}

impl Node {
    fn new(parent: Option<Arc<Node>>) -> Node {
        Node {
            cancelled: AtomicBool::new(false),
            registered: AtomicBool::new(parent.is_none()),
            inner: Mutex::new(Inner { children: Vec::new(), waiters: WaitQueue::new() }),
            parent,
        }
    }
}

/// Cancels `node` and every descendant, waking whoever waits for their
/// cancellation.
fn cancel_node(node: &Arc<Node>) {
    let mut stack = vec![node.clone()];
    while let Some(node) = stack.pop() {
        // The flag first (see the module docs), then the lists.
        if node.cancelled.swap(true, Ordering::AcqRel) {
            continue;
        }
        let (children, wake) = in_section(|| {
            let mut inner = node.lock();
            (std::mem::take(&mut inner.children), inner.waiters.take_all())
        });
        wake.wake_all();
        stack.extend(children.iter().filter_map(Weak::upgrade));
    }
}

/// Whether `node` (or an ancestor) was cancelled; registers it first if
/// it never was (see "Lazy registration").
fn is_cancelled_node(node: &Arc<Node>) -> bool {
    // `registered` first: once it is seen set, the flag is authoritative.
    let registered = node.registered.load(Ordering::Acquire);
    if node.cancelled.load(Ordering::Acquire) {
        return true;
    }
    if registered {
        return false;
    }
    register(node);
    node.cancelled.load(Ordering::Acquire)
}

/// Enters `node` and its unregistered ancestors in their parents' child
/// lists, top down (see "Lazy registration"); a parent found cancelled
/// passes its flag on instead.
fn register(node: &Arc<Node>) {
    // The unregistered chain from `node` up; each node keeps its parent
    // alive. Iterative: chains of spawns from spawns can be long.
    let mut chain = Vec::new();
    let mut cur = node;
    while !cur.registered.load(Ordering::Acquire) {
        chain.push(cur);
        match &cur.parent {
            Some(p) => cur = p,
            None => break,
        }
    }
    for n in chain.into_iter().rev() {
        let Some(parent) = &n.parent else { continue };
        // A runtime section: a GVThread frozen by forced preemption while
        // holding a parent's list lock would stall everyone who registers.
        in_section(|| {
            let mut inner = parent.lock();
            // Under the parent's lock, where `registered` is set.
            if n.registered.load(Ordering::Relaxed) {
                return;
            }
            if parent.cancelled.load(Ordering::Acquire) {
                n.cancelled.store(true, Ordering::Release);
            } else {
                let children = &mut inner.children;
                if children.len() == children.capacity() && children.len() >= 8 {
                    children.retain(|w| w.strong_count() > 0);
                }
                children.push(Arc::downgrade(n));
            }
            n.registered.store(true, Ordering::Release);
        });
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

/// Waiting for a token's cancellation as a select arm. Not part of the API
/// (used by [`select!`](crate::select)).
#[doc(hidden)]
pub struct CancelArm<'a> {
    token: &'a CancellationToken,
    reg: Option<WaitId>,
    fired: bool,
}

impl<'a> CancelArm<'a> {
    /// An arm that completes once `token` is cancelled.
    pub fn new(token: &'a CancellationToken) -> Self {
        CancelArm { token, reg: None, fired: false }
    }

    /// `Some(())` once this arm completed.
    pub fn take_result(&mut self) -> Option<()> {
        std::mem::take(&mut self.fired).then_some(())
    }
}

impl SelectArm for CancelArm<'_> {
    fn try_complete(&mut self) -> bool {
        self.fired = self.token.is_cancelled();
        self.fired
    }

    fn register(&mut self, ctx: &SelectCtx, arm: usize) -> bool {
        let node = self.token.node();
        // Registered first, so an ancestor's cancel reaches this node's
        // waiters.
        if !node.registered.load(Ordering::Acquire) {
            register(node);
        }
        self.reg = in_section(|| {
            let mut inner = node.lock();
            // Under the lock: `cancel` sets the flag before emptying the queue.
            (!node.cancelled.load(Ordering::Acquire)).then(|| inner.waiters.push_select(ctx, arm))
        });
        self.reg.is_some()
    }

    fn unregister(&mut self, _pass_on: bool) {
        // Cancellation wakes every waiter: there is nothing to pass on.
        if let Some(id) = self.reg.take() {
            let node = self.token.node();
            in_section(|| node.lock().waiters.remove(id));
        }
    }
}

/// [`sleep_or_cancelled`] returned early: the token was cancelled.
///
/// ```
/// let token = gvthread::CancellationToken::new();
/// token.cancel();
/// let e = gvthread::sleep_or_cancelled(std::time::Duration::from_secs(3), &token).unwrap_err();
/// assert_eq!(e.to_string(), "the wait was cancelled");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the wait was cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Sleeps for `d` like [`sleep`](crate::sleep), but returns
/// `Err(Cancelled)` as soon as `token` is cancelled (at once if it already
/// is). Pass the GVThread's own token (the spawn closure's argument, or
/// [`current_token`](crate::current_token)) to make a sleeping GVThread
/// respond to [`JoinHandle::cancel`](crate::JoinHandle::cancel).
///
/// Inside a GVThread only the GVThread waits; elsewhere the OS thread does.
///
/// ```
/// use std::time::{Duration, Instant};
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// rt.block_on(|| {
///     let sleeper = gvthread::spawn(|token| gvthread::sleep_or_cancelled(Duration::from_secs(30), &token));
///     let t = Instant::now();
///     gvthread::yield_now(); // let it start sleeping
///     sleeper.cancel();
///     assert_eq!(sleeper.join().unwrap(), Err(gvthread::Cancelled));
///     assert!(t.elapsed() < Duration::from_secs(30));
/// });
/// ```
pub fn sleep_or_cancelled(d: Duration, token: &CancellationToken) -> Result<(), Cancelled> {
    if token.is_cancelled() {
        return Err(Cancelled);
    }
    let deadline = Instant::now().checked_add(d);
    let mut arm = CancelArm::new(token);
    match select::run(&mut [&mut arm], select::Mode::Deadline(deadline)) {
        Some(_) => Err(Cancelled),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_propagates_down_not_up() {
        let root = CancellationToken::new();
        let a = root.child();
        let b = a.child();
        let sibling = root.child();
        a.cancel();
        assert!(a.is_cancelled() && b.is_cancelled());
        assert!(!root.is_cancelled() && !sibling.is_cancelled());
        root.cancel();
        assert!(sibling.is_cancelled());
        assert!(root.child().is_cancelled(), "child of a cancelled token starts cancelled");
    }

    #[test]
    fn cancellation_crosses_dropped_intermediate_tokens() {
        let root = CancellationToken::new();
        let grandchild = root.child().child();
        root.cancel();
        assert!(grandchild.is_cancelled());
        // A deep chain drops without recursing per level.
        let mut t = CancellationToken::new();
        for _ in 0..200_000 {
            t = t.child();
        }
        drop(t);
    }

    #[test]
    fn a_child_enters_its_parent_only_once_asked() {
        let root = CancellationToken::new();
        let kept: Vec<_> = (0..100).map(|_| root.child()).collect();
        assert!(root.node().lock().children.is_empty(), "made without a lock or an entry");
        assert!(!kept[7].is_cancelled());
        assert_eq!(root.node().lock().children.len(), 1, "asked once: entered");
        root.cancel();
        assert!(kept.iter().all(CancellationToken::is_cancelled), "registered or not, all cancelled");
    }

    #[test]
    fn a_long_unregistered_chain_registers_top_down() {
        let root = CancellationToken::new();
        let mut t = root.child();
        for _ in 0..100_000 {
            t = t.child();
        }
        assert!(!t.is_cancelled());
        root.cancel();
        assert!(t.is_cancelled(), "reached through every registered level");
        let late = CancellationToken::new();
        let mut u = late.child();
        for _ in 0..1_000 {
            u = u.child();
        }
        late.cancel();
        assert!(u.is_cancelled(), "registering under a cancelled ancestor takes its flag");
    }

    #[test]
    fn dropped_children_are_pruned() {
        let root = CancellationToken::new();
        for _ in 0..10_000 {
            let c = root.child();
            assert!(!c.is_cancelled());
        }
        assert!(root.node().lock().children.len() < 100);
    }
}
