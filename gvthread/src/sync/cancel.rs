//! Hierarchical cancellation tokens.
//!
//! A token is a node in a tree: cancelling a node cancels its whole subtree.
//! Parents keep weak references to children, so dropping a child subtree
//! frees it; dead entries are pruned when a parent's child list grows.
//! Cancellation is cooperative: code checks [`CancellationToken::is_cancelled`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

struct Node {
    cancelled: AtomicBool,
    children: Mutex<Vec<Weak<Node>>>,
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
#[derive(Clone)]
pub struct CancellationToken {
    node: Arc<Node>,
}

impl Default for CancellationToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancellationToken {
    /// A new root token.
    pub fn new() -> CancellationToken {
        CancellationToken {
            node: Arc::new(Node { cancelled: AtomicBool::new(false), children: Mutex::new(Vec::new()) }),
        }
    }

    /// A new token cancelled when `self` is (or already cancelled if `self` is).
    pub fn child(&self) -> CancellationToken {
        // A runtime section: a GVThread frozen by forced preemption while
        // holding the parent's list lock would stall every spawner.
        crate::sched::machine::in_section(|| self.child_inner())
    }

    /// [`child`](Self::child) for callers already in a runtime section.
    pub(crate) fn child_inner(&self) -> CancellationToken {
        let child = CancellationToken::new();
        let mut children = self.node.children.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock: `cancel` sets the flag before draining the
        // list under the same lock, so either we see the flag or it sees us.
        if self.node.cancelled.load(Ordering::Acquire) {
            child.node.cancelled.store(true, Ordering::Release);
            return child;
        }
        if children.len() == children.capacity() && children.len() >= 8 {
            children.retain(|w| w.strong_count() > 0);
        }
        children.push(Arc::downgrade(&child.node));
        drop(children);
        child
    }

    /// Cancels this token and every descendant.
    pub fn cancel(&self) {
        let mut stack = vec![self.node.clone()];
        while let Some(node) = stack.pop() {
            if node.cancelled.swap(true, Ordering::AcqRel) {
                continue;
            }
            let children = crate::sched::machine::in_section(|| {
                std::mem::take(&mut *node.children.lock().unwrap_or_else(|e| e.into_inner()))
            });
            stack.extend(children.iter().filter_map(Weak::upgrade));
        }
    }

    /// Whether this token (or an ancestor) was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.node.cancelled.load(Ordering::Acquire)
    }
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken").field("cancelled", &self.is_cancelled()).finish()
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
    fn dropped_children_are_pruned() {
        let root = CancellationToken::new();
        for _ in 0..10_000 {
            drop(root.child());
        }
        assert!(root.node.children.lock().unwrap().len() < 100);
    }
}
