//! [`NonPreemptibleAlloc`]: a global allocator wrapper inside which forced
//! preemption never freezes a GVThread.
//!
//! The preemption handler never freezes code in the C library (its `malloc`
//! takes arena locks that every thread needs), but an allocator linked into
//! the program as Rust code (jemalloc, mimalloc, a custom one) is not
//! recognisable by address. A GVThread frozen while holding such an
//! allocator's lock stops every other thread's allocations, the runtime's
//! own threads included, until it runs again; with a spin lock nothing ever
//! lets it run again. Wrapping the allocator marks each call on a
//! thread-local depth that the handler reads: it declines there and retries
//! shortly, as it does inside the C library.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{Ordering, compiler_fence};

thread_local! {
    /// Allocator calls in progress on this thread. Constant-initialised and
    /// without a destructor: reading it never allocates, never registers
    /// anything, and works from a signal handler and during thread exit.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether the calling thread is inside a [`NonPreemptibleAlloc`] call.
/// Async-signal-safe.
pub(crate) fn in_allocator() -> bool {
    DEPTH.with(|d| d.get()) > 0
}

/// Marks one allocator call for its lifetime.
struct InAllocator;

impl InAllocator {
    #[inline(always)]
    fn enter() -> InAllocator {
        DEPTH.with(|d| d.set(d.get() + 1));
        // The signal handler runs on this thread: keep the mark before the
        // allocator's code.
        compiler_fence(Ordering::SeqCst);
        InAllocator
    }
}

impl Drop for InAllocator {
    #[inline(always)]
    fn drop(&mut self) {
        compiler_fence(Ordering::SeqCst);
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Wraps a global allocator so that forced preemption never freezes a
/// GVThread inside it.
///
/// Use it when the program's global allocator is not the C library's
/// `malloc` (jemalloc, mimalloc, or your own) and takes locks: a GVThread
/// frozen while holding one would make every other thread that allocates,
/// the runtime's included, wait until it runs again (or, with a spin lock,
/// forever). With the wrapper, a preemption that lands inside the allocator
/// is retried shortly after, as it is inside the C library
/// ([`RuntimeMetrics::unsafe_point_retries`](crate::RuntimeMetrics::unsafe_point_retries)
/// counts them). The cost is one thread-local increment and decrement per
/// allocator call. The C library's allocator (Rust's default,
/// `std::alloc::System`) needs no wrapper.
///
/// ```
/// use std::alloc::System; // stands for `tikv_jemallocator::Jemalloc`, `mimalloc::MiMalloc`, ...
///
/// #[global_allocator]
/// static ALLOC: gvthread::NonPreemptibleAlloc<System> = gvthread::NonPreemptibleAlloc::new(System);
///
/// let v = vec![1u8; 1024];
/// assert_eq!(v.len(), 1024);
/// ```
#[derive(Debug, Default)]
pub struct NonPreemptibleAlloc<A> {
    inner: A,
}

impl<A> NonPreemptibleAlloc<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> NonPreemptibleAlloc<A> {
        NonPreemptibleAlloc { inner }
    }

    /// The wrapped allocator.
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

// SAFETY: every method forwards to the wrapped allocator with the same
// arguments and returns its result; the depth mark touches no allocated
// memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for NonPreemptibleAlloc<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _mark = InAllocator::enter();
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe { self.inner.alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _mark = InAllocator::enter();
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _mark = InAllocator::enter();
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _mark = InAllocator::enter();
        // SAFETY: the caller's contract, passed on unchanged.
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn calls_are_marked_while_they_run_and_only_then() {
        struct Probe;
        // SAFETY: forwards to System; records the mark seen inside.
        unsafe impl GlobalAlloc for Probe {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                assert!(in_allocator());
                // SAFETY: the caller's contract.
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                assert!(in_allocator());
                // SAFETY: the caller's contract.
                unsafe { System.dealloc(ptr, layout) }
            }
        }
        let a = NonPreemptibleAlloc::new(Probe);
        let layout = Layout::from_size_align(64, 8).unwrap();
        assert!(!in_allocator());
        // SAFETY: a valid non-zero layout; the block is freed with it.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert!(!in_allocator());
            let p = a.realloc(p, layout, 128);
            a.dealloc(p, Layout::from_size_align(128, 8).unwrap());
        }
        assert!(!in_allocator());
    }
}
