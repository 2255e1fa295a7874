//! The slot pool: chunked reservations, per-slot state words, LIFO free list.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::guard;
use super::os::{self, GuardScheme};
use super::{GUARD_SIZE, SLOT_SIZE, SLOTS_PER_CHUNK};

/// Chunk bases sit 1 MiB past a 2 MiB boundary (see the module docs).
const CHUNK_ALIGN: usize = 2 * 1024 * 1024;
const CHUNK_OFFSET: usize = 1024 * 1024;
const CHUNK_BYTES: usize = SLOT_SIZE * SLOTS_PER_CHUNK;

/// Why a slot could not be had.
#[derive(Debug)]
pub(crate) enum AllocError {
    /// The OS refused to reserve address space or install a guard.
    Os(io::Error),
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::Os(e) => write!(f, "the OS refused GVThread stack memory: {e}"),
        }
    }
}

/// A worker role's private stack of free slots (Go's per-P free list): slots
/// are taken and returned without the pool's lock on the spawn/exit fast path.
///
/// Only the machine holding the role touches it, and only inside a runtime
/// section, so a role hand-off (which never interrupts a section) cannot
/// interleave two users. The pool reserves `CAPACITY` extra slot ids per
/// role, so free slots hidden in caches never make a fresh allocation exceed
/// the pool's capacity.
pub(crate) struct SlotCache(std::cell::UnsafeCell<Vec<u32>>);

// SAFETY: see the type docs: one user at a time (the role holder, inside a
// runtime section).
unsafe impl Sync for SlotCache {}
// SAFETY: as above.
unsafe impl Send for SlotCache {}

impl SlotCache {
    /// Slots a role keeps for itself.
    pub(crate) const CAPACITY: usize = 32;

    pub(crate) fn new() -> SlotCache {
        SlotCache(std::cell::UnsafeCell::new(Vec::with_capacity(Self::CAPACITY)))
    }

    /// Takes the most recently cached slot.
    ///
    /// # Safety
    /// The caller holds the role this cache belongs to, inside a runtime section.
    pub(crate) unsafe fn pop(&self) -> Option<u32> {
        // SAFETY: exclusive access by the caller's contract.
        unsafe { (*self.0.get()).pop() }
    }

    /// Caches a free slot; false when full (the caller returns it to the pool).
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    pub(crate) unsafe fn push(&self, slot: u32) -> bool {
        // SAFETY: exclusive access by the caller's contract.
        let v = unsafe { &mut *self.0.get() };
        if v.len() < Self::CAPACITY {
            v.push(slot);
            true
        } else {
            false
        }
    }
}

/// One reservation of `SLOTS_PER_CHUNK` slots plus their side tables.
pub(super) struct Chunk {
    pub(super) base: *mut u8,
    /// Per-slot state words (see `task::state`). They live outside the slots so
    /// that stale wakers never touch slot memory, and so they survive
    /// `MADV_DONTNEED`.
    pub(super) states: Box<[AtomicU64]>,
    /// Per-slot pointer to the join state of the GVThread in it (type-erased
    /// `JoinCore`); whoever swaps it out completes the join.
    completions: Box<[AtomicPtr<()>]>,
    /// Per-slot: the guard page is installed. False for never-used slots and
    /// after the chunk was remapped (see [`SlotPool::trim`]); a slot gets its
    /// guard back when it is handed out again. Changed under the free-list
    /// or grow lock.
    guarded: Box<[AtomicBool]>,
}

/// The free list. `hot` slots keep their pages; `cold` ones were discarded.
struct FreeList {
    hot: VecDeque<u32>,
    cold: Vec<u32>,
    /// Cold slots per chunk: a chunk whose every slot is cold is remapped,
    /// which also frees its page tables.
    cold_per_chunk: Vec<u16>,
}

/// The chunk pointers of one pool, boxed so that its address is stable for
/// the overflow handler's registry (see `guard`).
pub(super) struct ChunkTable {
    /// Chunk `i` holds slots `i * SLOTS_PER_CHUNK ..`; null until reserved.
    /// Allocated zeroed (all null), so a huge `max_gvthreads` costs address
    /// space here, not resident memory.
    pub(super) chunks: Box<[AtomicPtr<Chunk>]>,
    /// Chunks are reserved in index order: `chunks[..reserved]` are non-null.
    pub(super) reserved: AtomicUsize,
}

impl ChunkTable {
    fn new(nchunks: usize) -> ChunkTable {
        let chunks: Box<[AtomicPtr<Chunk>]> = if nchunks == 0 {
            Box::new([])
        } else {
            let layout = std::alloc::Layout::array::<AtomicPtr<Chunk>>(nchunks).expect("chunk table size");
            // SAFETY: the layout has a non-zero size. Zeroed memory comes
            // from calloc, which for large sizes maps fresh pages: untouched,
            // so not resident.
            let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<AtomicPtr<Chunk>>();
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            // SAFETY: `p` holds `nchunks` zeroed elements, allocated by the
            // global allocator with the layout of a `[AtomicPtr<Chunk>]` of
            // that length; an all-zero `AtomicPtr` is a valid null pointer.
            unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, nchunks)) }
        };
        ChunkTable { chunks, reserved: AtomicUsize::new(0) }
    }

    /// The chunks reserved so far.
    pub(super) fn reserved(&self) -> &[AtomicPtr<Chunk>] {
        &self.chunks[..self.reserved.load(Ordering::Acquire)]
    }
}

/// Owner of every slot of one runtime.
pub(crate) struct SlotPool {
    table: Box<ChunkTable>,
    /// Entry in the overflow handler's registry (cleared before chunks are freed).
    registration: guard::Registration,
    grow: Mutex<()>,
    /// Slots handed out at least once; slots `>= fresh` were never used.
    fresh: AtomicU32,
    free: Mutex<FreeList>,
    hot_len: AtomicUsize,
    guard: GuardScheme,
    /// Set when GVThreads were abandoned at shutdown: their memory may still be
    /// referenced, so the reservations are never unmapped.
    leak: AtomicBool,
    /// Set once the stack reservations were unmapped at shutdown (the side
    /// tables stay for wakers that outlive the runtime).
    stacks_released: AtomicBool,
}

// SAFETY: the raw chunk pointers are only dereferenced while the pool lives and
// chunks are never freed before the pool; all shared fields are atomics or
// behind mutexes.
unsafe impl Send for SlotPool {}
// SAFETY: as above.
unsafe impl Sync for SlotPool {}

impl SlotPool {
    /// Free slots kept with their pages before the timer thread trims the rest.
    pub(crate) const RETAIN_HOT: usize = 1024;
    /// Slots discarded per trim step (bounds the time the free list is locked).
    const TRIM_BATCH: usize = 64;

    /// Creates a pool able to hold `max` slots and reserves the first chunk, so
    /// that an OS refusal surfaces when the runtime is built.
    pub(crate) fn new(max: usize, guard: GuardScheme) -> io::Result<SlotPool> {
        let nchunks = max.div_ceil(SLOTS_PER_CHUNK);
        let table = Box::new(ChunkTable::new(nchunks));
        let registration = guard::register(&*table);
        let pool = SlotPool {
            table,
            registration,
            grow: Mutex::new(()),
            fresh: AtomicU32::new(0),
            free: Mutex::new(FreeList { hot: VecDeque::new(), cold: Vec::new(), cold_per_chunk: Vec::new() }),
            hot_len: AtomicUsize::new(0),
            guard,
            leak: AtomicBool::new(false),
            stacks_released: AtomicBool::new(false),
        };
        pool.ensure_chunk_locked(0)?;
        Ok(pool)
    }

    fn chunk(&self, slot: u32) -> &Chunk {
        let p = self.table.chunks[slot as usize / SLOTS_PER_CHUNK].load(Ordering::Acquire);
        debug_assert!(!p.is_null(), "slot {slot} in an unreserved chunk");
        // SAFETY: a slot id is only ever used after `allocate` returned it (or
        // a slot below `fresh`), which made its chunk non-null; chunks live as
        // long as the pool.
        unsafe { &*p }
    }

    /// Reserves chunk `index` if needed. The caller holds the grow lock.
    fn ensure_chunk_locked(&self, index: usize) -> io::Result<()> {
        if !self.table.chunks[index].load(Ordering::Acquire).is_null() {
            return Ok(());
        }
        let base = os::reserve(CHUNK_BYTES, CHUNK_ALIGN, CHUNK_OFFSET)?;
        let chunk = Box::new(Chunk {
            base,
            states: (0..SLOTS_PER_CHUNK).map(|_| AtomicU64::new(0)).collect(),
            completions: (0..SLOTS_PER_CHUNK).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            guarded: (0..SLOTS_PER_CHUNK).map(|_| AtomicBool::new(false)).collect(),
        });
        self.table.chunks[index].store(Box::into_raw(chunk), Ordering::Release);
        // Chunks are reserved in order (`fresh` only grows), so this extends
        // the reserved prefix by one.
        debug_assert_eq!(self.table.reserved.load(Ordering::Relaxed), index);
        self.table.reserved.store(index + 1, Ordering::Release);
        Ok(())
    }

    /// Lowest address of `slot`.
    pub(crate) fn base(&self, slot: u32) -> *mut u8 {
        let c = self.chunk(slot);
        c.base.wrapping_add((slot as usize % SLOTS_PER_CHUNK) * SLOT_SIZE)
    }

    /// One past the highest address of `slot`.
    pub(crate) fn top(&self, slot: u32) -> *mut u8 {
        self.base(slot).wrapping_add(SLOT_SIZE)
    }

    /// The state word of `slot`.
    pub(crate) fn state(&self, slot: u32) -> &AtomicU64 {
        &self.chunk(slot).states[slot as usize % SLOTS_PER_CHUNK]
    }

    /// The completion pointer of `slot`.
    pub(crate) fn completion(&self, slot: u32) -> &AtomicPtr<()> {
        &self.chunk(slot).completions[slot as usize % SLOTS_PER_CHUNK]
    }

    /// Number of slot ids this pool can ever hand out (ids are below it).
    pub(crate) fn capacity(&self) -> usize {
        self.table.chunks.len() * SLOTS_PER_CHUNK
    }

    /// Number of slots ever handed out (live ones are among `0..used()`).
    pub(crate) fn used(&self) -> u32 {
        self.fresh.load(Ordering::Acquire)
    }

    /// Takes a free slot: the most recently freed one first (its pages are
    /// likely still cached), else a never-used one.
    ///
    /// The caller enforces the live limit, so at most `max` slots are ever
    /// taken at once and a never-used slot always exists when the lists are
    /// empty.
    pub(crate) fn allocate(&self) -> Result<u32, AllocError> {
        {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = free.hot.pop_back() {
                self.hot_len.store(free.hot.len(), Ordering::Relaxed);
                return Ok(s);
            }
            if let Some(s) = free.cold.pop() {
                free.cold_per_chunk[s as usize / SLOTS_PER_CHUNK] -= 1;
                // Its chunk may have been remapped since it went cold.
                self.ensure_guard(s)?;
                return Ok(s);
            }
        }
        // Never-used slots are handed out one at a time under the grow lock
        // (rare after warm-up), so the id, its chunk and its guard are ready
        // before `used()` admits the slot to scans.
        let _g = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        let slot = self.fresh.load(Ordering::Relaxed);
        assert!((slot as usize) < self.table.chunks.len() * SLOTS_PER_CHUNK, "slot pool overrun");
        self.ensure_chunk_locked(slot as usize / SLOTS_PER_CHUNK).map_err(AllocError::Os)?;
        self.ensure_guard(slot)?;
        self.fresh.store(slot + 1, Ordering::Release);
        Ok(slot)
    }

    /// Installs the guard page of a slot being handed out, if it has none.
    /// The caller holds the free-list or grow lock and owns the slot.
    fn ensure_guard(&self, slot: u32) -> Result<(), AllocError> {
        let flag = &self.chunk(slot).guarded[slot as usize % SLOTS_PER_CHUNK];
        if !flag.load(Ordering::Relaxed) {
            // SAFETY: the slot is free and owned by the caller; its guard page
            // holds nothing.
            unsafe { os::install_guard(self.guard, self.base(slot), GUARD_SIZE) }.map_err(AllocError::Os)?;
            flag.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Returns a slot whose GVThread has ended and whose stack nobody runs on.
    /// Returns true when this release made trimming necessary.
    pub(crate) fn release(&self, slot: u32) -> bool {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.hot.push_back(slot);
        let len = free.hot.len();
        self.hot_len.store(len, Ordering::Relaxed);
        len == Self::RETAIN_HOT + 1
    }

    /// Whether [`trim`](Self::trim) has work to do.
    pub(crate) fn needs_trim(&self) -> bool {
        self.hot_len.load(Ordering::Relaxed) > Self::RETAIN_HOT
    }

    /// Gives back the pages of the coldest free slots beyond
    /// [`RETAIN_HOT`](Self::RETAIN_HOT), at most `budget` slots per call.
    /// Returns the number of slots trimmed.
    pub(crate) fn trim(&self, budget: usize) -> usize {
        let mut done = 0;
        while done < budget {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let excess = free.hot.len().saturating_sub(Self::RETAIN_HOT);
            if excess == 0 {
                break;
            }
            let n = excess.min(Self::TRIM_BATCH).min(budget - done);
            for _ in 0..n {
                let slot = free.hot.pop_front().expect("excess counted above");
                // SAFETY: the slot is free (its GVThread ended and it is on the
                // free list, which we hold locked); nothing lives in it.
                unsafe {
                    os::discard(self.base(slot).add(GUARD_SIZE), SLOT_SIZE - GUARD_SIZE);
                }
                free.cold.push(slot);
                let c = slot as usize / SLOTS_PER_CHUNK;
                if free.cold_per_chunk.len() <= c {
                    free.cold_per_chunk.resize(c + 1, 0);
                }
                free.cold_per_chunk[c] += 1;
                if free.cold_per_chunk[c] as usize == SLOTS_PER_CHUNK {
                    self.remap_chunk(c);
                }
            }
            self.hot_len.store(free.hot.len(), Ordering::Relaxed);
            done += n;
        }
        done
    }

    /// Every slot of chunk `c` is cold (free, pages discarded, and we hold the
    /// free-list lock, so none can be handed out meanwhile): replace the
    /// whole chunk with a fresh mapping, which gives back its page tables
    /// too (the guard markers kept one page-table page per slot alive). The
    /// guards come back one by one as slots are reused (`ensure_guard`).
    fn remap_chunk(&self, c: usize) {
        let chunk = self.table.chunks[c].load(Ordering::Acquire);
        if chunk.is_null() {
            return;
        }
        // SAFETY: non-null chunk pointers stay valid for the pool's life.
        let chunk = unsafe { &*chunk };
        for g in chunk.guarded.iter() {
            g.store(false, Ordering::Relaxed);
        }
        // SAFETY: all slots of the chunk are free and locked out of reuse.
        if unsafe { os::remap_fresh(chunk.base, CHUNK_BYTES) }.is_err() {
            // Keep the old mapping (and its guards) if the kernel refused.
            for g in chunk.guarded.iter() {
                g.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Unmaps every stack reservation now, keeping the side tables (state
    /// words, completion pointers) that late wakers still read. Called at
    /// shutdown once no GVThread is alive and no more can be spawned, so that
    /// a waker kept by some other runtime (a tokio timer, say) does not keep
    /// gigabytes of address space and the pages of free slots alive.
    pub(crate) fn release_stacks(&self) {
        if self.leak.load(Ordering::Relaxed) || self.stacks_released.swap(true, Ordering::AcqRel) {
            return;
        }
        // The overflow handler must not consult chunks being unmapped.
        self.registration.unregister();
        for c in self.table.reserved() {
            let p = c.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: no GVThread is alive and none can be spawned, so no
                // stack in the chunk is in use or referenced; the chunk struct
                // itself (side tables) stays.
                unsafe { os::unreserve((*p).base, CHUNK_BYTES) };
            }
        }
    }

    /// Never unmap the reservations (abandoned GVThreads may still be referenced).
    pub(crate) fn leak_on_drop(&self) {
        self.leak.store(true, Ordering::Relaxed);
    }
}

impl Drop for SlotPool {
    fn drop(&mut self) {
        let leak = self.leak.load(Ordering::Relaxed);
        if leak {
            // Abandoned GVThreads may still run (and overflow): keep the table,
            // its chunks and the registration for the life of the process.
            let table = std::mem::replace(&mut self.table, Box::new(ChunkTable::new(0)));
            Box::leak(table);
            return;
        }
        self.registration.unregister();
        let released = self.stacks_released.load(Ordering::Acquire);
        for c in self.table.reserved() {
            let p = c.swap(ptr::null_mut(), Ordering::AcqRel);
            if p.is_null() {
                continue;
            }
            // SAFETY: `p` came from `Box::into_raw` in `ensure_chunk_locked` and was
            // swapped out above, so it is freed exactly once; no overflow
            // handler reads it any more (unregistered above).
            let chunk = unsafe { Box::from_raw(p) };
            if !released {
                // SAFETY: the pool is being dropped and no GVThread was
                // abandoned, so no stack in the chunk is referenced any more.
                unsafe { os::unreserve(chunk.base, CHUNK_BYTES) };
            }
        }
    }
}
