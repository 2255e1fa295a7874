//! Recycled heap blocks for join states.
//!
//! Every spawn allocates a join state (`task::join`) that lives until both
//! the GVThread and its handle are done with it. A batch of spawns followed
//! by their joins allocates and frees many at once, more than the C
//! allocator's per-thread cache keeps (glibc's tcache: 7 per size), so each
//! one took its slow path (about 200 instructions to allocate and as many to
//! free, in a profile of batches of 1,000). A role keeps up to
//! [`BlockCache::CAPACITY`] free blocks of one size and alignment for
//! itself instead, last freed first taken (still in cache), like Go's
//! per-P free list of goroutine descriptors.
//!
//! Blocks come from the global allocator with [`BLOCK`]'s layout, so any
//! cache may take a block freed anywhere, a block may go back to the global
//! allocator from anywhere, and a runtime's caches are emptied into it when
//! the runtime is dropped. Types that do not fit use the global allocator
//! directly ([`fits`]).

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::ptr::NonNull;

/// The layout of a recycled block: 128 bytes (a join state whose result
/// takes up to 24 bytes, `task::join`), aligned as `malloc` aligns
/// anyway (a stricter alignment takes glibc's slower `memalign` path, and
/// leaves fragments around each block).
pub(crate) const BLOCK: Layout = match Layout::from_size_align(128, 16) {
    Ok(l) => l,
    Err(_) => panic!("invalid block layout"),
};

/// Whether a value of layout `l` is kept in a recycled block.
pub(crate) const fn fits(l: Layout) -> bool {
    l.size() <= BLOCK.size() && l.align() <= BLOCK.align()
}

/// Allocates a block with [`BLOCK`]'s layout, from `cache` when it has one.
///
/// # Safety
/// If `cache` is given, the caller holds the role it belongs to, inside a
/// runtime section.
pub(crate) unsafe fn allocate(cache: Option<&BlockCache>) -> NonNull<u8> {
    // SAFETY: forwarded from the caller.
    if let Some(b) = cache.and_then(|c| unsafe { c.pop() }) {
        return b;
    }
    // SAFETY: BLOCK has a non-zero size.
    let p = unsafe { std::alloc::alloc(BLOCK) };
    NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(BLOCK))
}

/// Frees a block from [`allocate`], into `cache` when it has room.
///
/// # Safety
/// `b` came from [`allocate`] and is not used after; for `cache`, as in
/// [`allocate`].
pub(crate) unsafe fn free(b: NonNull<u8>, cache: Option<&BlockCache>) {
    if let Some(c) = cache
        // SAFETY: forwarded from the caller.
        && unsafe { c.push(b) }
    {
        return;
    }
    // SAFETY: `b` was allocated with BLOCK by the global allocator.
    unsafe { std::alloc::dealloc(b.as_ptr(), BLOCK) }
}

/// A role's free blocks.
///
/// Only the machine holding the role touches it, and only inside a runtime
/// section (so a role hand-off, which never interrupts a section, cannot
/// interleave two users), like the role's `SlotCache`.
pub(crate) struct BlockCache(UnsafeCell<Vec<NonNull<u8>>>);

// SAFETY: see the type docs: one user at a time (the role holder, inside a
// runtime section); the blocks are plain memory of the global allocator.
unsafe impl Sync for BlockCache {}
// SAFETY: as above.
unsafe impl Send for BlockCache {}

impl BlockCache {
    /// Blocks a role keeps at most (128 KiB): enough for a batch of a
    /// thousand spawns joined together.
    pub(crate) const CAPACITY: usize = 1024;

    pub(crate) fn new() -> BlockCache {
        BlockCache(UnsafeCell::new(Vec::new()))
    }

    /// # Safety
    /// The caller holds the role this cache belongs to, inside a runtime section.
    unsafe fn pop(&self) -> Option<NonNull<u8>> {
        // SAFETY: exclusive access by the caller's contract.
        unsafe { (*self.0.get()).pop() }
    }

    /// False when full (the caller frees the block).
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    unsafe fn push(&self, b: NonNull<u8>) -> bool {
        // SAFETY: exclusive access by the caller's contract.
        let v = unsafe { &mut *self.0.get() };
        if v.len() >= Self::CAPACITY {
            return false;
        }
        if v.capacity() == 0 {
            // Once, at the first free, not per push.
            v.reserve_exact(Self::CAPACITY);
        }
        v.push(b);
        true
    }

    /// Blocks held now.
    #[cfg(test)]
    fn len(&mut self) -> usize {
        self.0.get_mut().len()
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        for b in self.0.get_mut().drain(..) {
            // SAFETY: every cached block came from `allocate` (the global
            // allocator, BLOCK) and nobody uses it.
            unsafe { std::alloc::dealloc(b.as_ptr(), BLOCK) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_is_the_next_taken_and_the_cache_is_bounded() {
        let mut cache = BlockCache::new();
        // SAFETY: this test is the cache's only user (so for every call below).
        let a = unsafe { allocate(Some(&cache)) };
        assert_eq!(a.as_ptr() as usize % BLOCK.align(), 0);
        // SAFETY: `a` came from `allocate` and is not used after.
        unsafe { free(a, Some(&cache)) };
        // SAFETY: the only user.
        let b = unsafe { allocate(Some(&cache)) };
        assert_eq!(a, b, "last freed, first taken");
        // SAFETY: the only user.
        let many: Vec<_> = (0..BlockCache::CAPACITY + 10).map(|_| unsafe { allocate(Some(&cache)) }).collect();
        for m in many {
            // SAFETY: each came from `allocate`, freed once.
            unsafe { free(m, Some(&cache)) };
        }
        assert_eq!(cache.len(), BlockCache::CAPACITY, "the rest went back to the allocator");
        // SAFETY: `b` came from `allocate`, freed once.
        unsafe { free(b, None) };
        assert_eq!(cache.len(), BlockCache::CAPACITY);
    }
}
