//! A role's attention word: which queues that go ahead of `runnext` may
//! hold work, so the common scheduling decision reads one word instead of
//! every such queue.
//!
//! # Protocol
//!
//! Each bit stands for a group of queues ([`URGENT`]: Critical and High
//! work, the role's and the global ones; [`HOGS`]: the role's GVThreads that
//! used up a time slice). A bit is a "maybe": set means look at the queues,
//! clear means they were empty when last looked at and nothing was pushed
//! since.
//!
//! * **Push** (any thread, also a signal handler): push the GVThread, then
//!   [`raise`](Attention::raise) the bit (a release read-modify-write).
//! * **Clear** (the role's holder, when a bit is set but its queues look
//!   empty): [`lower`](Attention::lower) the bit (an acquire
//!   read-modify-write), then look at the queues again, and raise it back if
//!   something is there.
//!
//! Why no push goes unseen: both sides update the one word by
//! read-modify-writes, so they are ordered. If the pusher's raise comes
//! later, the bit stays set. If it comes first, the holder's lower reads it
//! (or a later value of the word, in its release sequence), so the push
//! happens before the holder's second look, which finds it.

use std::sync::atomic::{AtomicU8, Ordering};

/// Critical or High work may wait for the role.
pub(crate) const URGENT: u8 = 1;

/// A GVThread of the role that used up its time slice may wait (its
/// `frozen` or `preempted` queue).
pub(crate) const HOGS: u8 = 2;

/// The attention word (see the module docs).
pub(crate) struct Attention(AtomicU8);

impl Attention {
    /// Nothing to look at.
    pub(crate) const fn new() -> Attention {
        Attention(AtomicU8::new(0))
    }

    /// Whether any bit is set (the holder's decision; a relaxed load).
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// Whether `bit` is set.
    #[inline]
    pub(crate) fn has(&self, bit: u8) -> bool {
        self.0.load(Ordering::Relaxed) & bit != 0
    }

    /// Sets `bit` after a push (async-signal-safe).
    #[inline]
    pub(crate) fn raise(&self, bit: u8) {
        // Release: the push is visible to the holder whose `lower` reads this.
        self.0.fetch_or(bit, Ordering::Release);
    }

    /// Clears `bit` when its queues looked empty, then asks `still_empty`
    /// again (see the module docs); raises it back if that finds work.
    pub(crate) fn lower(&self, bit: u8, still_empty: impl FnOnce() -> bool) {
        // Acquire: a push whose raise this reads is visible to the look below.
        self.0.fetch_and(!bit, Ordering::Acquire);
        if !still_empty() {
            self.0.fetch_or(bit, Ordering::Relaxed);
        }
    }
}

/// The clearing protocol against a concurrent push (loom).
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicU8, Ordering};

    /// After a push and a concurrent clear, the bit is set.
    #[test]
    fn loom_a_push_is_never_hidden_by_a_clear() {
        loom::model(|| {
            let word = Arc::new(AtomicU8::new(super::URGENT));
            let queued = Arc::new(AtomicBool::new(false));
            let pusher = {
                let (word, queued) = (word.clone(), queued.clone());
                loom::thread::spawn(move || {
                    queued.store(true, Ordering::Relaxed);
                    word.fetch_or(super::URGENT, Ordering::Release);
                })
            };
            // The holder found the queue empty before and clears.
            word.fetch_and(!super::URGENT, Ordering::Acquire);
            let saw = queued.load(Ordering::Relaxed);
            if saw {
                word.fetch_or(super::URGENT, Ordering::Relaxed);
            }
            pusher.join().unwrap();
            // The work was pushed: the bit must say so (the holder raised it
            // back after seeing the work, or the raise came after the clear).
            assert!(word.load(Ordering::Relaxed) & super::URGENT != 0, "a push went unseen (saw: {saw})");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_keeps_the_bit_when_work_is_there() {
        let a = Attention::new();
        assert!(!a.any());
        a.raise(HOGS);
        a.raise(URGENT);
        a.lower(URGENT, || true);
        assert!(!a.has(URGENT) && a.has(HOGS));
        a.lower(HOGS, || false);
        assert!(a.has(HOGS), "work found on the second look");
    }
}
