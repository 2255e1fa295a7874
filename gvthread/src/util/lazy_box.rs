//! `LazyBox`: a value boxed on first need, in one pointer-sized word.
//!
//! Join states keep two rarely used parts out of line this way (the waiter
//! slot of joiners that are not GVThreads of the same runtime, and the
//! GVThread's token node), so the state of a small result fits 64 bytes.
//! Unlike `OnceLock` (a word more) it never blocks: racing makers each box
//! a value, one compare-exchange publishes its own, and the others drop
//! theirs, so no maker waits on another (and none can be frozen, by forced
//! preemption, while others wait on it).

use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A `T` boxed on first need and kept until the `LazyBox` is dropped.
pub(crate) struct LazyBox<T> {
    /// Null until made; then a `Box<T>` (from `Box::into_raw`), published by
    /// a compare-exchange and never replaced.
    ptr: AtomicPtr<T>,
    _owns: PhantomData<Box<T>>,
}

// SAFETY: as `OnceLock`: sharing hands out `&T` (so `T: Sync`) and lets any
// thread make the value that the owner later drops (so `T: Send`); sending
// moves the box.
unsafe impl<T: Send + Sync> Sync for LazyBox<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for LazyBox<T> {}

impl<T> LazyBox<T> {
    /// An empty one.
    pub(crate) const fn new() -> LazyBox<T> {
        LazyBox { ptr: AtomicPtr::new(ptr::null_mut()), _owns: PhantomData }
    }

    /// The value, if made (Acquire: its contents are visible).
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        // SAFETY: a non-null pointer is a box published by `get_or_make`
        // and freed only when `self` is dropped.
        unsafe { self.ptr.load(Ordering::Acquire).as_ref() }
    }

    /// The value, made by `make` now if it was not yet. Allocates; never
    /// waits for another maker.
    pub(crate) fn get_or_make(&self, make: impl FnOnce() -> T) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        let made = Box::into_raw(Box::new(make()));
        match self.ptr.compare_exchange(ptr::null_mut(), made, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: published just now; freed only with `self`.
            Ok(_) => unsafe { &*made },
            Err(theirs) => {
                // SAFETY: `made` was never published, so it is still ours.
                drop(unsafe { Box::from_raw(made) });
                // SAFETY: `theirs` is the published box (not null: the
                // exchange failed), freed only with `self`.
                unsafe { &*theirs }
            }
        }
    }
}

impl<T> Drop for LazyBox<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: a published box, owned by `self`, which nobody else can
            // reach any more.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn racing_makers_publish_one_value_and_every_value_is_dropped() {
        for _ in 0..200 {
            let drops = Arc::new(AtomicUsize::new(0));
            let lazy = LazyBox::new();
            let barrier = std::sync::Barrier::new(4);
            let seen: Vec<usize> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            std::ptr::from_ref(lazy.get_or_make(|| Counted(drops.clone()))) as usize
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(seen.iter().all(|&p| p == seen[0]), "every maker sees the published value");
            assert_eq!(std::ptr::from_ref(lazy.get().unwrap()) as usize, seen[0]);
            let made = drops.load(Ordering::SeqCst);
            assert!(made <= 3, "only the losers' values are dropped so far");
            drop(lazy);
            assert!(drops.load(Ordering::SeqCst) == made + 1, "the published value is dropped with the box");
        }
        let empty: LazyBox<Counted> = LazyBox::new();
        assert!(empty.get().is_none());
    }
}
