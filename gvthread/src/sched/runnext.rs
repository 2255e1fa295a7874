//! A role's `runnext` (Go's): the one GVThread its holder runs next.
//!
//! # Who writes it
//!
//! Only the machine holding the role puts a GVThread in and takes one out,
//! inside a runtime section: the last GVThread woken or spawned by the one
//! running on the role. The only other writer is the preemption monitor,
//! which moves an **unstarted** GVThread that waited there for a whole tick to
//! the global queue (where idle workers can take it; not when the runtime has
//! one ordinary worker). A started GVThread is
//! bound to its role (see the module docs of `sched`) and could not run
//! anywhere else, so the monitor leaves it alone.
//!
//! The word tells the two apart: an unstarted GVThread (or any GVThread
//! under free migration) is stored with [`MOVABLE`] set, and the monitor
//! only ever exchanges a word with that bit away. So the holder needs an
//! atomic exchange only when the word it replaces or takes carries the bit;
//! for an empty word or a bound GVThread (a message-passing pair's wakes:
//! the common case) a load and a store are enough, because nobody else can
//! change that word meanwhile. That saves two locked instructions per switch
//! of a ping-pong pair on x86_64.
//!
//! Slot ids stay below [`MOVABLE`] (`SlotPool` caps its id space), so a
//! marked id never equals the empty word.

use std::sync::atomic::{AtomicU32, Ordering};

/// The empty word.
const EMPTY: u32 = u32::MAX;

/// Marks a GVThread the monitor may move (unstarted, or free migration).
pub(crate) const MOVABLE: u32 = 1 << 31;

/// A role's `runnext` (see the module docs).
pub(crate) struct RunNext(AtomicU32);

impl RunNext {
    /// An empty `runnext`.
    pub(crate) const fn new() -> RunNext {
        RunNext(AtomicU32::new(EMPTY))
    }

    /// Whether no GVThread waits here (racy hint for anyone).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.load(Ordering::Relaxed) == EMPTY
    }

    /// Puts `slot` here (holder only, in a runtime section); `movable`:
    /// unstarted or free to migrate. Returns the GVThread it displaces.
    #[inline]
    pub(crate) fn put(&self, slot: u32, movable: bool) -> Option<u32> {
        debug_assert!(slot < MOVABLE, "slot ids stay below the MOVABLE bit");
        let new = if movable { slot | MOVABLE } else { slot };
        let cur = self.0.load(Ordering::Relaxed);
        let old = if cur != EMPTY && cur & MOVABLE != 0 {
            // The monitor may take this one meanwhile: exchange.
            // Release: see below; Acquire: what the monitor wrote before.
            self.0.swap(new, Ordering::AcqRel)
        } else {
            // Empty or bound: only the holder changes it. Release: a
            // movable GVThread's initialised stack and context must be
            // visible to the monitor that takes it (and to the worker it
            // passes it on to).
            self.0.store(new, Ordering::Release);
            cur
        };
        (old != EMPTY).then_some(old & !MOVABLE)
    }

    /// Takes the GVThread waiting here (holder only, in a runtime section).
    #[inline]
    pub(crate) fn take(&self) -> Option<u32> {
        let cur = self.0.load(Ordering::Relaxed);
        if cur == EMPTY {
            return None;
        }
        if cur & MOVABLE == 0 {
            // Bound: nobody but the holder changes the word.
            self.0.store(EMPTY, Ordering::Relaxed);
            return Some(cur);
        }
        let got = self.0.swap(EMPTY, Ordering::AcqRel);
        (got != EMPTY).then_some(got & !MOVABLE)
    }

    /// Whether it holds a movable GVThread (unstarted, or under free
    /// migration). A hint: the monitor may take it meanwhile.
    #[inline]
    pub(crate) fn holds_movable(&self) -> bool {
        let w = self.0.load(Ordering::Relaxed);
        w != EMPTY && w & MOVABLE != 0
    }

    /// Whether a GVThread bound to this role waits here (racy hint for
    /// anyone): a wake, unlike an unstarted GVThread, which the monitor may
    /// move to where an idle worker takes it.
    #[inline]
    pub(crate) fn holds_bound(&self) -> bool {
        let w = self.0.load(Ordering::Relaxed);
        w != EMPTY && w & MOVABLE == 0
    }

    /// The word as it is, for the monitor to compare across ticks.
    #[inline]
    pub(crate) fn peek(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// The monitor's eviction: takes the GVThread if the word is still
    /// `seen` (from [`peek`](Self::peek)) and it is movable. Returns its
    /// slot. The slot may have started, parked and come back under the
    /// same word since `seen` was read only if it is unstarted again (a
    /// new generation): a bound GVThread is never stored movable.
    pub(crate) fn evict(&self, seen: u32) -> Option<u32> {
        if seen == EMPTY || seen & MOVABLE == 0 {
            return None;
        }
        self.0.compare_exchange(seen, EMPTY, Ordering::AcqRel, Ordering::Relaxed).ok().map(|w| w & !MOVABLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_gvthread_is_taken_back_unchanged() {
        let r = RunNext::new();
        assert!(r.is_empty());
        assert_eq!(r.put(7, false), None);
        assert!(!r.is_empty());
        assert_eq!(r.take(), Some(7));
        assert_eq!(r.take(), None);
    }

    #[test]
    fn a_put_returns_the_displaced_gvthread_without_its_mark() {
        let r = RunNext::new();
        assert_eq!(r.put(3, true), None);
        assert_eq!(r.put(4, false), Some(3));
        assert_eq!(r.put(5, true), Some(4));
        assert_eq!(r.take(), Some(5));
    }

    #[test]
    fn the_monitor_evicts_only_a_movable_gvthread_it_saw() {
        let r = RunNext::new();
        r.put(9, false);
        assert_eq!(r.evict(r.peek()), None, "bound GVThreads stay");
        assert_eq!(r.take(), Some(9));
        r.put(9, true);
        let seen = r.peek();
        assert_eq!(r.evict(seen), Some(9));
        assert!(r.is_empty());
        assert_eq!(r.evict(seen), None, "already gone");
        r.put(10, true);
        assert_eq!(r.evict(seen), None, "another GVThread now");
        assert_eq!(r.take(), Some(10));
    }
}
