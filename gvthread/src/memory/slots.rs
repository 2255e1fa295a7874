//! The slot pool: chunked reservations, per-slot side tables, lock-free free
//! stacks per stack size class, and slots prepared ahead of demand.
//!
//! # Slot ids and chunks
//!
//! Slots are reserved [`SLOTS_PER_CHUNK`] at a time (a *chunk*, one
//! `mmap`), all of one [`StackClass`]. Chunks get consecutive indices in one
//! table whatever their class, and slot `id` is slot `id % 256` of chunk
//! `id / 256`: ids stay dense (shutdown scans `0..used()`), and a runtime
//! that only uses the default class numbers its GVThreads `0, 1, 2...`.
//!
//! # Per-slot pool state (`meta`)
//!
//! | meta | where the slot is | guard page |
//! |---|---|---|
//! | `UNPREPARED` | never used, or on its class's `unprepared` stack | none |
//! | `IN_USE` | handed out (running, or in a worker's cache or the depot), or being prepared | yes (being prepared: soon) |
//! | `FREE` (+`DISCARDED`) | on its class's `free` stack (pages given back) | yes |
//! | `CLAIMED` (+`ORPHAN`) | held by the scavenger (popped meanwhile) | yes |
//! | `UNGUARDED` | on the `free` stack, its chunk remapped | none |
//!
//! Spawners pop the `free` stack (lock-free, see [`super::stack`]) and take
//! the slot with a compare-and-swap `FREE -> IN_USE`. A popped slot that the
//! scavenger holds is marked `ORPHAN` and skipped; the scavenger pushes it
//! back when done. A popped `UNGUARDED` slot moves to the `unprepared` stack
//! (it needs a new guard, which is a system call, not for a spawner). So the
//! spawn path makes no system call and takes no lock while prepared slots
//! remain, which the preparer makes sure of ahead of demand
//! ([`super::scavenge`]). Only when a burst outruns it does a spawner prepare
//! a batch itself: it picks the slots under the maintenance lock (inside the
//! spawn's runtime section, and nothing under that lock allocates or blocks
//! on anything a frozen GVThread can hold) and installs their guards without
//! it.
//!
//! # Staggered stack tops
//!
//! A stack does not start at the very end of its slot but some pages below
//! it (`Chunk::slot_top`): slot `k` of a chunk starts `k % n` pages lower,
//! with `n` up to 64 colours (a slot of 16 MiB or more; fewer for smaller
//! slots, so that at most 1/64 of a slot goes unused; none for 256 KiB and
//! less). Slots of a large class are 16 MiB apart, so without it every
//! stack top would sit at the same offset in its page-table page and at the
//! same low address bits: the page-table entries of a thousand GVThreads in
//! flight competed for the same few sets of the second-level cache, and
//! their translations for one set of the TLB, and every switch to a
//! GVThread of a batch of 1,000 walked the page tables from the third-level
//! cache (spawn + join in batches of 1,000: about 180 ns per task, 150 with
//! the tops staggered; `docs/benchmarks.md`). The pages above a top are never touched (no
//! memory), and the top page stays in the page-table page it shares with
//! the slot's end (for large classes, the next slot's guard page: the
//! offset stays below the 1 MiB a chunk is shifted by, see `memory`).

use std::fmt;
use std::io;
use std::mem::size_of;
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use super::class::{NUM_CLASSES, StackClass};
use super::depot::SlotDepot;
use super::guard;
use super::os::{self, GuardScheme};
use super::stack::IdStack;
use super::{PAGE_SIZE, SLOTS_PER_CHUNK};
use crate::arch;
use crate::task::header::{HEADER_SIZE, Header};

/// Chunks start 2 MiB-aligned, or 1 MiB past that for slots of 2 MiB and
/// more (see the module docs of `memory`).
const CHUNK_ALIGN: usize = 2 * 1024 * 1024;
const CHUNK_OFFSET_LARGE: usize = 1024 * 1024;

pub(super) const UNPREPARED: u8 = 0;
pub(super) const IN_USE: u8 = 1;
pub(super) const FREE: u8 = 2;
pub(super) const CLAIMED: u8 = 3;
pub(super) const UNGUARDED: u8 = 4;
pub(super) const KIND: u8 = 0x0f;
/// With `FREE`: the slot's pages were given back.
pub(super) const DISCARDED: u8 = 0x10;
/// With `CLAIMED`: a spawner popped the slot meanwhile; the scavenger pushes
/// it back.
pub(super) const ORPHAN: u8 = 0x20;

/// Why a slot could not be had.
#[derive(Debug)]
pub(crate) enum AllocError {
    /// The OS refused to reserve address space or install a guard (or the
    /// `vm.max_map_count` budget of the `mprotect` fallback is used up).
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
/// are taken and returned without touching the shared free stacks on the
/// spawn/exit fast path.
///
/// Only the machine holding the role touches it, and only inside a runtime
/// section, so a role hand-off (which never interrupts a section) cannot
/// interleave two users. The pool reserves `CAPACITY` extra slot ids per
/// role, so free slots hidden in caches never make a fresh allocation exceed
/// the pool's capacity. Cached slots may be of any class: the spawner checks.
/// A role about to sleep gives them all back (`Shared::return_cached_slots`),
/// so an idle runtime's chunks can be given back whole.
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

    /// Moves the oldest [`SlotDepot::BATCH`] cached slots out: those for
    /// which `to_depot` holds into `depot` while it has room, every other
    /// one to `release` (back to the pool).
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    pub(crate) unsafe fn spill(&self, depot: &SlotDepot, to_depot: impl Fn(u32) -> bool, mut release: impl FnMut(u32)) {
        // SAFETY: exclusive access by the caller's contract.
        let v = unsafe { &mut *self.0.get() };
        let n = SlotDepot::BATCH.min(v.len());
        let mut batch = [0u32; SlotDepot::BATCH];
        let mut kept = 0;
        for &s in &v[..n] {
            if to_depot(s) {
                batch[kept] = s;
                kept += 1;
            } else {
                release(s);
            }
        }
        let put = depot.put(&batch[..kept]);
        for &s in &batch[put..kept] {
            release(s);
        }
        v.drain(..n);
    }

    /// Takes up to [`SlotDepot::BATCH`] slots from `depot` into an empty
    /// cache; false if the depot had none.
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    pub(crate) unsafe fn refill(&self, depot: &SlotDepot) -> bool {
        // SAFETY: exclusive access by the caller's contract.
        let v = unsafe { &mut *self.0.get() };
        let mut batch = [0u32; SlotDepot::BATCH];
        let n = depot.take(&mut batch);
        v.extend_from_slice(&batch[..n]);
        n > 0
    }
}

/// One reservation of `SLOTS_PER_CHUNK` slots of one class plus their side
/// tables. The structure itself lives in its own anonymous mapping (zeroed,
/// which is a valid value for every atomic), so creating a chunk never
/// calls the allocator.
pub(super) struct Chunk {
    pub(super) base: *mut u8,
    pub(super) slot_size: usize,
    /// `colour_mask(slot_size)`, kept so that finding a stack's top (on
    /// every switch) takes a mask, not the arithmetic that makes it.
    colour_mask: usize,
    pub(super) class: StackClass,
    /// Per-slot state word and completion pointer, in [`spread`] order, like
    /// every per-slot array here except `compact` (use the `*_at`
    /// accessors).
    words: [SlotWords; SLOTS_PER_CHUNK],
    /// Free-stack links (see `memory::stack`).
    next: [AtomicU32; SLOTS_PER_CHUNK],
    /// Pool state of each slot (see the module docs).
    meta: [AtomicU8; SLOTS_PER_CHUNK],
    /// When each free slot was freed (pool epoch, ms).
    freed_at: [AtomicU32; SLOTS_PER_CHUNK],
    /// The compact buffer holding each compacted GVThread's stack (see
    /// `memory::compact`), or null.
    pub(super) compact: [AtomicPtr<u8>; SLOTS_PER_CHUNK],
    /// How many [`StackExposed`](super::compact::StackExposed) guards each
    /// slot's GVThread holds (written only by that GVThread), in [`spread`]
    /// order (use [`Chunk::exposed_at`]).
    exposed: [AtomicU32; SLOTS_PER_CHUNK],
}

/// The two words of a slot that a spawn and an exit both write, side by
/// side: one cache line miss between them, not two (a batch of spawned
/// GVThreads touches a thousand of each).
#[repr(C, align(16))]
struct SlotWords {
    /// The slot's state word (see `task::state`). It lives outside the slot
    /// so that stale wakers never touch slot memory, and so it survives
    /// `MADV_DONTNEED`.
    state: AtomicU64,
    /// Pointer to the join state of the GVThread in the slot (type-erased
    /// `JoinCore`); whoever swaps it out completes the join.
    completion: AtomicPtr<()>,
}

/// Where the side-table word of slot `k` of a chunk sits in an array of
/// words `per_line` to a cache line: neighbouring slots get words on
/// different cache lines (slot `k` shares its line with `k + lines`,
/// `k + 2 * lines`, ...). Slots are handed out in order, so GVThreads
/// spawned together (a pair and its peers) run on different workers with
/// neighbouring slots; without the spread the words they write at every
/// park and wake shared a line, and two workers each running its own
/// ping-pong pair ran at half the speed of one (the line bounced between
/// the CPUs at every switch).
const fn spread(k: usize, per_line: usize) -> usize {
    let lines = SLOTS_PER_CHUNK / per_line;
    (k % lines) * per_line + k / lines
}

const _: () = {
    // `spread` is a permutation of 0..SLOTS_PER_CHUNK when the line count
    // divides it.
    assert!(SLOTS_PER_CHUNK.is_multiple_of(64 / size_of::<SlotWords>()));
    assert!(64 % size_of::<SlotWords>() == 0, "a slot's words never straddle two lines");
    assert!(SLOTS_PER_CHUNK.is_multiple_of(64 / size_of::<AtomicU32>()));
    assert!(SLOTS_PER_CHUNK.is_multiple_of(64 / size_of::<AtomicU8>()));
};

impl Chunk {
    pub(super) fn bytes(&self) -> usize {
        self.slot_size * SLOTS_PER_CHUNK
    }

    /// The state word of slot `k` of this chunk.
    #[inline]
    pub(super) fn state_at(&self, k: usize) -> &AtomicU64 {
        &self.words[spread(k, 64 / size_of::<SlotWords>())].state
    }

    /// The exposed-stack count of slot `k` of this chunk.
    #[inline]
    pub(super) fn exposed_at(&self, k: usize) -> &AtomicU32 {
        &self.exposed[spread(k, 64 / size_of::<AtomicU32>())]
    }

    /// The completion pointer of slot `k` of this chunk.
    #[inline]
    fn completion_at(&self, k: usize) -> &AtomicPtr<()> {
        &self.words[spread(k, 64 / size_of::<SlotWords>())].completion
    }

    /// The free-stack link of slot `k` of this chunk.
    #[inline]
    pub(super) fn next_at(&self, k: usize) -> &AtomicU32 {
        &self.next[spread(k, 64 / size_of::<AtomicU32>())]
    }

    /// The pool state of slot `k` of this chunk.
    #[inline]
    pub(super) fn meta_at(&self, k: usize) -> &AtomicU8 {
        &self.meta[spread(k, 64 / size_of::<AtomicU8>())]
    }

    /// Every slot's pool state, in no particular order (for counting).
    pub(super) fn metas(&self) -> &[AtomicU8] {
        &self.meta
    }

    /// When slot `k` of this chunk was freed.
    #[inline]
    pub(super) fn freed_at(&self, k: usize) -> &AtomicU32 {
        &self.freed_at[spread(k, 64 / size_of::<AtomicU32>())]
    }

    pub(super) fn slot_base(&self, k: usize) -> *mut u8 {
        self.base.wrapping_add(k * self.slot_size)
    }

    /// Where the stack of slot `k` starts (its header just below): the end
    /// of the slot, less `k % n` pages for `n` colours (see "Staggered stack
    /// tops"). Async-signal-safe.
    #[inline]
    pub(super) fn slot_top(&self, k: usize) -> *mut u8 {
        self.base.wrapping_add((k + 1) * self.slot_size - (k & self.colour_mask) * PAGE_SIZE)
    }
}

/// The number of staggered tops (colours) of slots of `slot_size`, less
/// one: up to 64, at most one page per 64 of the slot (see "Staggered stack
/// tops"). Slot sizes are powers of two, so the number is one too, and this
/// is a mask.
const fn colour_mask(slot_size: usize) -> usize {
    let colours = slot_size / (64 * PAGE_SIZE);
    let colours = if colours > 64 {
        64
    } else if colours == 0 {
        1
    } else {
        colours
    };
    colours - 1
}

/// How far below the end of its slot the stack of slot `k` (of a chunk of
/// `slot_size` slots) starts: `k % n` pages, `n` the number of colours, so
/// that neighbouring slots' tops fall on different pages of their
/// page-table pages (see "Staggered stack tops"). What `Chunk::slot_top`
/// subtracts (with the mask it keeps), for the tests.
#[cfg(test)]
const fn top_offset(slot_size: usize, k: usize) -> usize {
    (k & colour_mask(slot_size)) * PAGE_SIZE
}

const CHUNK_STRUCT_BYTES: usize = size_of::<Chunk>().next_multiple_of(PAGE_SIZE);

/// The chunk pointers of one pool, boxed so that its address is stable for
/// the overflow handler's registry (see `guard`).
pub(super) struct ChunkTable {
    /// Chunk `i` holds slots `i * SLOTS_PER_CHUNK ..`; null until reserved.
    /// Allocated zeroed (all null), so a huge table costs address space
    /// here, not resident memory.
    pub(super) chunks: Box<[AtomicPtr<Chunk>]>,
    /// Chunks are reserved in index order: `chunks[..reserved]` are non-null.
    pub(super) reserved: AtomicUsize,
}

impl ChunkTable {
    pub(super) fn new(nchunks: usize) -> ChunkTable {
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

/// Free slots of one class.
pub(super) struct ClassPool {
    /// Guarded free slots (recycled or prepared), newest on top.
    pub(super) free: IdStack,
    /// Slots that need a guard before use (their chunk was remapped).
    pub(super) unprepared: IdStack,
    /// How many free slots the preparer keeps ready (adapts to demand).
    pub(super) want: AtomicUsize,
    /// A spawner asked the preparer for more slots.
    pub(super) refill: AtomicBool,
    /// A spawner found no prepared slot since the last scavenger pass.
    pub(super) missed: AtomicBool,
    /// Slots of this class ever carved out of chunks (bounds `want`).
    pub(super) carved: AtomicUsize,
}

/// State of the maintenance work (preparation, scavenging), under
/// [`SlotPool::maint`].
pub(super) struct Maint {
    /// Per class: the chunk being carved into fresh slots and the next slot
    /// index in it (`u32::MAX`: none yet).
    pub(super) carve: [(u32, u32); NUM_CLASSES],
    /// When the next scavenger pass is due.
    pub(super) next_pass: Instant,
    /// Per class: most slots in use during the current and the previous
    /// retention window (the scavenger keeps that many warm).
    pub(super) peaks: [(usize, usize); NUM_CLASSES],
    /// Start of the current retention window.
    pub(super) window_start: Instant,
    /// When the scavenger last looked whether the depot was used.
    pub(super) depot_look: Instant,
}

/// A slot's state word and header ([`SlotPool::locate`]). Both addresses
/// are fixed for the slot's id and stay valid as long as the pool (chunks
/// are never unmapped before it goes); the header is only read while the
/// slot is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotAt {
    state: *const AtomicU64,
    /// The slot's header, at the top of its stack.
    pub(crate) header: *mut Header,
}

impl SlotAt {
    /// Names no slot (a machine in its scheduler loop).
    pub(crate) const NONE: SlotAt = SlotAt { state: ptr::null(), header: ptr::null_mut() };

    /// The slot's state word.
    ///
    /// # Safety
    ///
    /// `self` came from [`SlotPool::locate`] of a pool that is still alive
    /// (any holder of its runtime's `Shared`, such as a machine, keeps it).
    #[inline]
    pub(crate) unsafe fn state<'a>(self) -> &'a AtomicU64 {
        // SAFETY: the caller's contract: the word lives in a chunk of a
        // live pool, and chunks stay mapped as long as the pool.
        unsafe { &*self.state }
    }
}

/// Owner of every slot of one runtime.
pub(crate) struct SlotPool {
    pub(super) table: Box<ChunkTable>,
    /// Entry in the overflow handler's registry (cleared before chunks are freed).
    registration: guard::Registration,
    pub(super) classes: [ClassPool; NUM_CLASSES],
    pub(super) maint: Mutex<Maint>,
    pub(super) guard: GuardScheme,
    /// Time base of `epoch`.
    start: Instant,
    /// Coarse clock (ms since `start`) stamped on freed slots; refreshed by
    /// housekeeping and by the release that arms the scavenger.
    pub(super) epoch: AtomicU32,
    /// Free slots may hold pages the scavenger has not looked at yet.
    pub(super) armed: AtomicBool,
    /// Set when GVThreads were abandoned at shutdown: their memory may still be
    /// referenced, so the reservations are never unmapped.
    leak: AtomicBool,
    /// Set once the stack reservations were unmapped at shutdown (the side
    /// tables stay for wakers that outlive the runtime).
    stacks_released: AtomicBool,
    /// Stack compaction of long-parked GVThreads (`memory::compact`).
    pub(super) compact: super::compact::CompactStats,
    /// Free slots passed between roles in batches (`memory::depot`).
    pub(crate) depot: SlotDepot,
    /// Test hook: guard installations to fail on purpose.
    #[cfg(test)]
    pub(super) fail_guards: AtomicUsize,
}

// SAFETY: the raw chunk pointers are only dereferenced while the pool lives and
// chunks are never freed before the pool; all shared fields are atomics or
// behind mutexes.
unsafe impl Send for SlotPool {}
// SAFETY: as above.
unsafe impl Sync for SlotPool {}

/// What [`SlotPool::allocate`] hands out.
pub(crate) struct Allocated {
    pub(crate) slot: u32,
    /// The preparer should run soon (wake the timer thread).
    pub(crate) kick: bool,
}

impl SlotPool {
    /// Slots prepared when the pool is created (so an OS refusal surfaces
    /// when the runtime is built) and the least the preparer keeps ready.
    pub(super) const WANT_MIN: usize = 32;

    /// Creates a pool for up to `capacity` slots alive at once and prepares
    /// the first slots of `default_class`.
    pub(crate) fn new(capacity: usize, guard: GuardScheme, default_class: StackClass) -> io::Result<SlotPool> {
        // Room for every class to hold `capacity` slots over the pool's life
        // (free slots of one class cannot serve another), within the id space.
        let per_class = capacity.div_ceil(SLOTS_PER_CHUNK) + 1;
        // Ids stay below `runnext`'s mark bit (see `sched::runnext`).
        let max_chunks = (crate::sched::runnext::MOVABLE as usize / SLOTS_PER_CHUNK) - 1;
        let nchunks = (per_class * NUM_CLASSES).min(max_chunks);
        let table = Box::new(ChunkTable::new(nchunks));
        let registration = guard::register(&*table);
        let pool = SlotPool {
            table,
            registration,
            classes: std::array::from_fn(|_| ClassPool {
                free: IdStack::new(),
                unprepared: IdStack::new(),
                want: AtomicUsize::new(Self::WANT_MIN),
                refill: AtomicBool::new(false),
                missed: AtomicBool::new(false),
                carved: AtomicUsize::new(0),
            }),
            maint: Mutex::new(Maint {
                carve: [(u32::MAX, 0); NUM_CLASSES],
                next_pass: Instant::now(),
                peaks: [(0, 0); NUM_CLASSES],
                window_start: Instant::now(),
                depot_look: Instant::now(),
            }),
            guard,
            start: Instant::now(),
            epoch: AtomicU32::new(0),
            armed: AtomicBool::new(false),
            leak: AtomicBool::new(false),
            stacks_released: AtomicBool::new(false),
            compact: super::compact::CompactStats::new(),
            depot: SlotDepot::new(),
            #[cfg(test)]
            fail_guards: AtomicUsize::new(0),
        };
        {
            let mut mt = pool.maint.lock().unwrap_or_else(|e| e.into_inner());
            pool.prepare::<{ Self::WANT_MIN }>(&mut mt, default_class, Self::WANT_MIN)
                .map_err(|AllocError::Os(e)| e)?;
        }
        Ok(pool)
    }

    #[inline]
    pub(super) fn chunk(&self, slot: u32) -> &Chunk {
        let p = self.table.chunks[slot as usize / SLOTS_PER_CHUNK].load(Ordering::Acquire);
        debug_assert!(!p.is_null(), "slot {slot} in an unreserved chunk");
        // SAFETY: a slot id is only ever used after the pool handed it out
        // (or below `used()`), which made its chunk non-null; chunks live as
        // long as the pool.
        unsafe { &*p }
    }

    /// The chunk of `slot` and its index there.
    #[inline]
    pub(super) fn chunk_and_index(&self, slot: u32) -> (&Chunk, usize) {
        (self.chunk(slot), slot as usize % SLOTS_PER_CHUNK)
    }

    #[inline]
    pub(super) fn next_link(&self, slot: u32) -> &AtomicU32 {
        self.chunk(slot).next_at(slot as usize % SLOTS_PER_CHUNK)
    }

    #[inline]
    pub(super) fn meta(&self, slot: u32) -> &AtomicU8 {
        self.chunk(slot).meta_at(slot as usize % SLOTS_PER_CHUNK)
    }

    /// Lowest address of `slot`.
    pub(crate) fn base(&self, slot: u32) -> *mut u8 {
        self.chunk(slot).slot_base(slot as usize % SLOTS_PER_CHUNK)
    }

    /// Where `slot`'s stack starts: one past the highest address it uses
    /// (its header just below), up to 1/64 of the slot below the slot's end
    /// (see "Staggered stack tops").
    pub(crate) fn top(&self, slot: u32) -> *mut u8 {
        self.chunk(slot).slot_top(slot as usize % SLOTS_PER_CHUNK)
    }

    /// The stack size class of `slot`.
    pub(crate) fn class_of(&self, slot: u32) -> StackClass {
        self.chunk(slot).class
    }

    /// Where `slot`'s state word and header are, with one chunk lookup for
    /// both (the scheduler's resume and park paths use both).
    #[inline]
    pub(crate) fn locate(&self, slot: u32) -> SlotAt {
        let (c, k) = self.chunk_and_index(slot);
        let top = c.slot_top(k);
        SlotAt { state: c.state_at(k), header: top.wrapping_sub(HEADER_SIZE).cast() }
    }

    /// The state word of `slot`.
    pub(crate) fn state(&self, slot: u32) -> &AtomicU64 {
        self.chunk(slot).state_at(slot as usize % SLOTS_PER_CHUNK)
    }

    /// `slot`'s state word, if `slot` is below [`used`](Self::used) (for
    /// slot ids read as hints, which may be stale or `u32::MAX`).
    /// Async-signal-safe.
    pub(crate) fn state_if_valid(&self, slot: u32) -> Option<&AtomicU64> {
        (slot < self.used()).then(|| self.state(slot))
    }

    /// The completion pointer of `slot`.
    pub(crate) fn completion(&self, slot: u32) -> &AtomicPtr<()> {
        self.chunk(slot).completion_at(slot as usize % SLOTS_PER_CHUNK)
    }

    /// Number of slot ids this pool can ever hand out (ids are below it).
    pub(crate) fn capacity(&self) -> usize {
        self.table.chunks.len() * SLOTS_PER_CHUNK
    }

    /// Slot ids below this belong to reserved chunks (live ones are among
    /// them; the others' state words say `FREE`).
    pub(crate) fn used(&self) -> u32 {
        (self.table.reserved.load(Ordering::Acquire) * SLOTS_PER_CHUNK) as u32
    }

    /// Takes a free slot of `class`: the most recently freed (or prepared)
    /// one. No system call and no lock unless no prepared slot is left, in
    /// which case the caller prepares a batch itself.
    ///
    /// The caller enforces the live limit.
    pub(crate) fn allocate(&self, class: StackClass) -> Result<Allocated, AllocError> {
        let cp = &self.classes[class.index()];
        loop {
            // Bounded: after a remap the top of the stack may hold many
            // unguarded slots; past a few, let a batch be prepared instead.
            let mut skipped = 0;
            while skipped < Self::WANT_MIN
                && let Some(slot) = cp.free.pop(|s| self.next_link(s))
            {
                skipped += 1;
                if self.take_popped(slot, cp) {
                    if let Some(next) = cp.free.peek() {
                        self.prefetch_for_spawn(next);
                    }
                    let kick = cp.free.len() < cp.want.load(Ordering::Relaxed) / 2
                        && !cp.refill.load(Ordering::Relaxed)
                        && !cp.refill.swap(true, Ordering::AcqRel);
                    return Ok(Allocated { slot, kick });
                }
            }
            // The preparer fell behind: prepare a batch here, and ask for
            // more next time.
            cp.missed.store(true, Ordering::Relaxed);
            let want = cp.want.load(Ordering::Relaxed);
            cp.want.store((want * 2).min(Self::want_cap(cp, class)), Ordering::Relaxed);
            let mt = self.maint.lock().unwrap_or_else(|e| e.into_inner());
            if self.stacks_gone() {
                return Err(AllocError::Os(io::Error::other("gvthread: the runtime has shut down")));
            }
            let mut ids = [0u32; Self::WANT_MIN];
            self.prepare_then_unlock(mt, class, Self::WANT_MIN, &mut ids)?;
            cp.refill.store(true, Ordering::Release);
        }
    }

    /// Starts loading what switching to `slot` reads first: its state word
    /// and the header lines (saved context, `bound`). A hint: `slot` may
    /// have run and exited by the time anyone switches to it.
    #[inline]
    pub(crate) fn prefetch_for_run(&self, slot: u32) {
        let at = self.locate(slot);
        arch::prefetch(at.header.cast());
        arch::prefetch(at.header.cast::<u8>().wrapping_add(64));
        arch::prefetch(at.state.cast());
    }

    /// Starts loading what the next spawn from the free stack will touch
    /// first if it gets `slot`: its link word (the pop), its state word, and
    /// its header. In a large burst every free slot is cold, and the top of
    /// a 16 MiB slot sits alone behind its own page-table page: the page
    /// walk and the line misses, taken one spawn ahead, overlap with this
    /// spawn's work instead of stalling the next one.
    #[inline]
    fn prefetch_for_spawn(&self, slot: u32) {
        let (c, k) = self.chunk_and_index(slot);
        arch::prefetch(c.slot_top(k).wrapping_sub(HEADER_SIZE));
        arch::prefetch(std::ptr::from_ref(c.next_at(k)).cast());
        arch::prefetch(std::ptr::from_ref(c.state_at(k)).cast());
    }

    /// Most slots of `class` kept prepared: half as many as the class ever
    /// used (so preparing ahead at most adds half to the peak footprint, as
    /// a garbage collector's growth factor does), and at most about 16 MiB
    /// of page tables.
    pub(super) fn want_cap(cp: &ClassPool, class: StackClass) -> usize {
        let max = 4096 * (CHUNK_ALIGN / class.slot_size()).max(1);
        (cp.carved.load(Ordering::Relaxed) / 2).clamp(Self::WANT_MIN, max)
    }

    /// A spawner popped `slot` off `cp.free`: takes it (true), or passes it
    /// on (false): to the scavenger holding it, or to the preparer when its
    /// guard is gone.
    fn take_popped(&self, slot: u32, cp: &ClassPool) -> bool {
        let meta = self.meta(slot);
        let mut cur = meta.load(Ordering::Acquire);
        loop {
            let (new, took) = match cur & KIND {
                FREE => (IN_USE, true),
                CLAIMED => (cur | ORPHAN, false),
                UNGUARDED => (UNPREPARED, false),
                _ => {
                    debug_assert!(false, "slot {slot} on a free stack with meta {cur:#x}");
                    return false;
                }
            };
            // Acquire: the previous occupant's exit (and the scavenger's
            // work) happen-before our use.
            match meta.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if new == UNPREPARED {
                        cp.unprepared.push(slot, self.next_link(slot));
                        cp.refill.store(true, Ordering::Release);
                    }
                    return took;
                }
                Err(c) => cur = c,
            }
        }
    }

    /// Returns a slot whose GVThread has ended and whose stack nobody runs on.
    /// It keeps its pages. Returns true when the scavenger was idle and should
    /// be woken (wake the timer thread).
    pub(crate) fn release(&self, slot: u32) -> bool {
        let c = self.chunk(slot);
        let k = slot as usize % SLOTS_PER_CHUNK;
        let stamp =
            if self.armed.load(Ordering::Relaxed) { self.epoch.load(Ordering::Relaxed) } else { self.refresh_epoch() };
        c.freed_at(k).store(stamp, Ordering::Relaxed);
        // Release: the stamp and the exit happen-before a taker's Acquire.
        c.meta_at(k).store(FREE, Ordering::Release);
        self.classes[c.class.index()].free.push(slot, c.next_at(k));
        // An RMW on every release: either the scavenger's disarming swap
        // sees this slot's meta, or this swap sees it disarmed and wakes it.
        !self.armed.swap(true, Ordering::AcqRel)
    }

    /// Advances the coarse clock to now; returns it.
    pub(super) fn refresh_epoch(&self) -> u32 {
        let now = self.start.elapsed().as_millis() as u32;
        self.epoch.fetch_max(now, Ordering::Relaxed).max(now)
    }

    /// Reserves chunk number `table.reserved` for `class`. The caller holds
    /// the maintenance lock.
    pub(super) fn reserve_chunk(&self, class: StackClass) -> Result<u32, AllocError> {
        let index = self.table.reserved.load(Ordering::Relaxed);
        if index >= self.table.chunks.len() {
            return Err(AllocError::Os(io::Error::other(
                "gvthread: out of slot ids for GVThread stacks (too many chunks of different stack sizes)",
            )));
        }
        let slot_size = class.slot_size();
        let offset = if slot_size >= CHUNK_ALIGN { CHUNK_OFFSET_LARGE } else { 0 };
        let base = os::reserve(slot_size * SLOTS_PER_CHUNK, CHUNK_ALIGN, offset).map_err(AllocError::Os)?;
        let meta = match os::reserve(CHUNK_STRUCT_BYTES, PAGE_SIZE, 0) {
            Ok(m) => m.cast::<Chunk>(),
            Err(e) => {
                // SAFETY: just reserved, nothing uses it.
                unsafe { os::unreserve(base, slot_size * SLOTS_PER_CHUNK) };
                return Err(AllocError::Os(e));
            }
        };
        // SAFETY: `meta` is a fresh zeroed mapping large enough for a Chunk;
        // zero is a valid value of every atomic array, and the four plain
        // fields are written before the chunk is published.
        unsafe {
            ptr::addr_of_mut!((*meta).base).write(base);
            ptr::addr_of_mut!((*meta).slot_size).write(slot_size);
            ptr::addr_of_mut!((*meta).colour_mask).write(colour_mask(slot_size));
            ptr::addr_of_mut!((*meta).class).write(class);
        }
        self.table.chunks[index].store(meta, Ordering::Release);
        self.table.reserved.store(index + 1, Ordering::Release);
        Ok(index as u32)
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
        // No housekeeping may touch the stacks any more.
        let _mt = self.maint.lock().unwrap_or_else(|e| e.into_inner());
        for c in self.table.reserved() {
            let p = c.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: no GVThread is alive and none can be spawned, so no
                // stack in the chunk is in use or referenced; the chunk struct
                // itself (side tables) stays.
                unsafe { os::unreserve((*p).base, (*p).bytes()) };
            }
        }
    }

    /// Whether the stacks were unmapped (housekeeping then has nothing to do).
    pub(super) fn stacks_gone(&self) -> bool {
        self.stacks_released.load(Ordering::Acquire)
    }

    /// Never unmap the reservations (abandoned GVThreads may still be referenced).
    pub(crate) fn leak_on_drop(&self) {
        self.leak.store(true, Ordering::Relaxed);
    }

    /// Duration since the pool's time base for epoch stamps (test support).
    #[cfg(test)]
    pub(super) fn age(&self) -> Duration {
        self.start.elapsed()
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
        self.free_compact_buffers();
        let released = self.stacks_released.load(Ordering::Acquire);
        for c in self.table.reserved() {
            let p = c.swap(ptr::null_mut(), Ordering::AcqRel);
            if p.is_null() {
                continue;
            }
            // No overflow handler reads `p` any more (unregistered above), and
            // the pool is being dropped: no GVThread or waker uses it.
            // SAFETY: made by `reserve_chunk`, swapped out above: unmapped once.
            unsafe {
                if !released {
                    os::unreserve((*p).base, (*p).bytes());
                }
                os::unreserve(p.cast(), CHUNK_STRUCT_BYTES);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::class::{MAX_SLOT, MIN_SLOT};

    #[test]
    fn stack_tops_are_staggered_within_the_slot_and_its_page_table_page() {
        let mut size = MIN_SLOT;
        while size <= MAX_SLOT {
            let offsets: Vec<usize> = (0..SLOTS_PER_CHUNK).map(|k| top_offset(size, k)).collect();
            let max = *offsets.iter().max().unwrap();
            assert!(max <= size / 64, "{size}: at most 1/64 of the slot unused");
            assert!(offsets.iter().all(|o| o % PAGE_SIZE == 0), "{size}: tops on page boundaries");
            if size >= CHUNK_ALIGN {
                // The top page stays within the 1 MiB below the slot's end,
                // in the page-table page shared with the next slot's guard.
                assert!(max + PAGE_SIZE <= CHUNK_OFFSET_LARGE, "{size}");
            }
            let colours = offsets.iter().collect::<std::collections::HashSet<_>>().len();
            match size {
                s if s <= 256 << 10 => assert_eq!(colours, 1, "{size}: small slots are not staggered"),
                s if s >= 16 << 20 => assert_eq!(colours, 64, "{size}"),
                _ => assert!(colours > 1, "{size}"),
            }
            if colours > 1 {
                assert!(offsets.windows(2).all(|w| w[0] != w[1]), "{size}: neighbours differ");
            }
            size *= 2;
        }
    }
}
