//! Recycled heap blocks for join states.
//!
//! Every spawn allocates a join state (`task::join`) that lives until both
//! the GVThread and its handle are done with it. A batch of spawns followed
//! by their joins allocates and frees many at once, more than the C
//! allocator's per-thread cache keeps (glibc's tcache: 7 per size), so each
//! one took its slow path (about 200 instructions to allocate and as many to
//! free, in a profile of batches of 1,000). A role keeps up to
//! [`BlockCache::CAPACITY`] free blocks of each [`BlockSize`] for itself
//! instead, last freed first taken (still in cache), like Go's per-P free
//! list of goroutine descriptors.
//!
//! Blocks come from the global allocator with their size's layout, so any
//! cache may take a block freed anywhere, a block may go back to the global
//! allocator from anywhere, and a runtime's caches are emptied into it when
//! the runtime is dropped. Types that fit no size use the global allocator
//! directly ([`BlockSize::for_layout`]).

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::ptr::NonNull;

/// The sizes of recycled blocks, aligned as `malloc` aligns anyway (a
/// stricter alignment takes glibc's slower `memalign` path, and leaves
/// fragments around each block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockSize {
    /// 64 bytes: the join state of a result of up to 16 bytes (none, a
    /// word, a pointer: most spawns).
    Small = 0,
    /// 128 bytes: a result of up to 80 bytes (a `String`, a `Vec`).
    Large = 1,
}

impl BlockSize {
    /// The block size that holds a value of layout `l`, if any.
    pub(crate) const fn for_layout(l: Layout) -> Option<BlockSize> {
        if l.align() > 16 {
            None
        } else if l.size() <= 64 {
            Some(BlockSize::Small)
        } else if l.size() <= 128 {
            Some(BlockSize::Large)
        } else {
            None
        }
    }

    /// The layout blocks of this size are allocated with.
    pub(crate) const fn layout(self) -> Layout {
        let size = match self {
            BlockSize::Small => 64,
            BlockSize::Large => 128,
        };
        match Layout::from_size_align(size, 16) {
            Ok(l) => l,
            Err(_) => panic!("invalid block layout"),
        }
    }
}

/// Allocates a block of `size`, from `cache` when it has one.
///
/// # Safety
/// If `cache` is given, the caller holds the role it belongs to, inside a
/// runtime section.
pub(crate) unsafe fn allocate(size: BlockSize, cache: Option<&BlockCache>) -> NonNull<u8> {
    // SAFETY: forwarded from the caller.
    if let Some(b) = cache.and_then(|c| unsafe { c.pop(size) }) {
        return b;
    }
    let layout = size.layout();
    // SAFETY: block layouts have a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

/// Frees a block from [`allocate`] of the same `size`, into `cache` when it
/// has room.
///
/// # Safety
/// `b` came from [`allocate`] with `size` and is not used after; for
/// `cache`, as in [`allocate`].
pub(crate) unsafe fn free(b: NonNull<u8>, size: BlockSize, cache: Option<&BlockCache>) {
    if let Some(c) = cache
        // SAFETY: forwarded from the caller.
        && unsafe { c.push(size, b) }
    {
        return;
    }
    // SAFETY: `b` was allocated with this size's layout by the global allocator.
    unsafe { std::alloc::dealloc(b.as_ptr(), size.layout()) }
}

/// A role's free blocks, one stack per [`BlockSize`].
///
/// Only the machine holding the role touches it, and only inside a runtime
/// section (so a role hand-off, which never interrupts a section, cannot
/// interleave two users), like the role's `SlotCache`.
pub(crate) struct BlockCache([UnsafeCell<Vec<NonNull<u8>>>; 2]);

// SAFETY: see the type docs: one user at a time (the role holder, inside a
// runtime section); the blocks are plain memory of the global allocator.
unsafe impl Sync for BlockCache {}
// SAFETY: as above.
unsafe impl Send for BlockCache {}

impl BlockCache {
    /// Blocks of each size a role keeps at most (64 KiB of small ones, 128
    /// KiB of large ones): enough for a batch of a thousand spawns joined
    /// together.
    pub(crate) const CAPACITY: usize = 1024;

    pub(crate) fn new() -> BlockCache {
        BlockCache([UnsafeCell::new(Vec::new()), UnsafeCell::new(Vec::new())])
    }

    /// # Safety
    /// The caller holds the role this cache belongs to, inside a runtime section.
    unsafe fn pop(&self, size: BlockSize) -> Option<NonNull<u8>> {
        // SAFETY: exclusive access by the caller's contract.
        unsafe { (*self.0[size as usize].get()).pop() }
    }

    /// False when full (the caller frees the block).
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    unsafe fn push(&self, size: BlockSize, b: NonNull<u8>) -> bool {
        // SAFETY: exclusive access by the caller's contract.
        let v = unsafe { &mut *self.0[size as usize].get() };
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

    /// Blocks of `size` held now.
    #[cfg(test)]
    fn len(&mut self, size: BlockSize) -> usize {
        self.0[size as usize].get_mut().len()
    }
}

impl Drop for BlockCache {
    fn drop(&mut self) {
        for size in [BlockSize::Small, BlockSize::Large] {
            for b in self.0[size as usize].get_mut().drain(..) {
                // SAFETY: every cached block of this stack came from
                // `allocate` with `size` (the global allocator) and nobody
                // uses it.
                unsafe { std::alloc::dealloc(b.as_ptr(), size.layout()) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_is_the_next_taken_and_the_cache_is_bounded() {
        for size in [BlockSize::Small, BlockSize::Large] {
            let other = if size == BlockSize::Small { BlockSize::Large } else { BlockSize::Small };
            let mut cache = BlockCache::new();
            // SAFETY: this test is the cache's only user (so for every call below).
            let a = unsafe { allocate(size, Some(&cache)) };
            assert_eq!(a.as_ptr() as usize % size.layout().align(), 0);
            // SAFETY: `a` came from `allocate` with `size` and is not used after.
            unsafe { free(a, size, Some(&cache)) };
            assert_eq!(cache.len(other), 0, "sizes are kept apart");
            // SAFETY: the only user.
            let b = unsafe { allocate(size, Some(&cache)) };
            assert_eq!(a, b, "last freed, first taken");
            // SAFETY: the only user.
            let many: Vec<_> =
                (0..BlockCache::CAPACITY + 10).map(|_| unsafe { allocate(size, Some(&cache)) }).collect();
            for m in many {
                // SAFETY: each came from `allocate` with `size`, freed once.
                unsafe { free(m, size, Some(&cache)) };
            }
            assert_eq!(cache.len(size), BlockCache::CAPACITY, "the rest went back to the allocator");
            // SAFETY: `b` came from `allocate` with `size`, freed once.
            unsafe { free(b, size, None) };
            assert_eq!(cache.len(size), BlockCache::CAPACITY);
        }
    }

    #[test]
    fn layouts_pick_the_smallest_block_that_holds_them() {
        assert_eq!(BlockSize::for_layout(Layout::new::<[u64; 8]>()), Some(BlockSize::Small));
        assert_eq!(BlockSize::for_layout(Layout::new::<[u64; 9]>()), Some(BlockSize::Large));
        assert_eq!(BlockSize::for_layout(Layout::new::<[u64; 16]>()), Some(BlockSize::Large));
        assert_eq!(BlockSize::for_layout(Layout::new::<[u64; 17]>()), None);
        assert_eq!(BlockSize::for_layout(Layout::from_size_align(32, 64).unwrap()), None);
    }
}
