//! GVThread memory: slots of a few stack size classes (16 MiB by default)
//! carved out of large reservations, kept for reuse, prepared ahead of
//! demand, and given back to the OS when unused for a while.
//!
//! # Slot layout
//!
//! ```text
//!   slot_base + slot size  +-------------------------------+
//!                          | Header (task::Header)         |  one page holds the header,
//!                          | spawn payload (the closure)   |  the closure and the first
//!                          | first stack frames            |  stack frames of an idle GVThread
//!                          |   ... stack grows down ...    |
//!   slot_base + GUARD_SIZE +-------------------------------+
//!                          | guard page (never accessible) |
//!   slot_base              +-------------------------------+
//! ```
//!
//! # Reservations and `vm.max_map_count`
//!
//! Slots are reserved in chunks of [`SLOTS_PER_CHUNK`] slots of one class (4 GiB
//! of address space for the default class) as the number of live GVThreads grows, so a runtime that never has more
//! than a few hundred GVThreads reserves a single chunk, and many runtimes fit in
//! one process. A chunk is a single `mmap(PROT_READ | PROT_WRITE,
//! MAP_NORESERVE)`: no physical memory and no commit charge until a page is
//! touched. Guard pages are *guard markers* (`madvise(MADV_GUARD_INSTALL)`,
//! Linux 6.13+) which live in the page tables and do not split the mapping, so a
//! chunk stays one kernel mapping however many guards it holds. On older
//! kernels the guard is an `mprotect(PROT_NONE)` page, which splits the mapping
//! (two kernel mappings per slot): every time the pool prepares more slots it
//! checks the process's current mapping count against `vm.max_map_count`, and
//! a spawn beyond it fails with an error saying what to change.
//!
//! Chunks of slots of 2 MiB or more start at an address that is 1 MiB past a
//! 2 MiB boundary, so the guard page of slot *i + 1* and the top page of slot
//! *i* share one page-table page: an idle GVThread costs one data page plus
//! (amortised) one page-table page. Smaller classes pack several slots into
//! each 2 MiB range, so their idle stacks share page-table pages
//! ([`class`]).
//!
//! # Stack overflow
//!
//! [`guard`] installs a process-wide `SIGSEGV` handler. Every pool registers
//! its chunk table with it, so a fault in the guard page of any live runtime's
//! slot is reported as `gvthread: stack overflow in GVThread
//! <slot>.<generation> 'name' (16 MiB stack)` before the process aborts; other faults
//! go to the previous handler. Rust frames larger than a page are probed page
//! by page, so no frame can step over the one-page guard into the slot below.
//!
//! # Reuse
//!
//! Freed slots go on a lock-free LIFO free stack per class and keep their
//! pages: a reused slot costs no system call. Never-used slots get their
//! guard ahead of demand, in bulk, on the timer thread; memory unused for
//! seconds goes back to the OS gradually, page tables included
//! ([`scavenge`]).
//!
//! # Compaction
//!
//! With `SchedulerConfig::compact_idle_after`, the used part of the stack of
//! a GVThread parked for long is copied to a small heap buffer and the slot's
//! pages (and, when its neighbours are compacted too, its page tables) go
//! back to the OS; whoever resumes it copies the bytes back first
//! ([`compact`]).

pub(crate) mod blocks;
mod class;
mod compact;
mod depot;
mod guard;
mod os;
mod scavenge;
mod slots;
mod stack;

pub(crate) use class::{DEFAULT_STACK, MAX_SLOT, StackClass};
pub(crate) use compact::{LATENCY_BUCKETS, StackAt, StackExposed};
pub(crate) use depot::SlotDepot;
pub(crate) use guard::ensure_altstack;
pub(crate) use os::{GuardScheme, current_map_count, max_map_count, probe_guard_scheme};
pub(crate) use slots::{AllocError, SlotAt, SlotCache, SlotPool};

/// Size of the inaccessible guard page at the bottom of each slot.
pub(crate) const GUARD_SIZE: usize = 4096;
/// Slots per reservation chunk (4 GiB of address space for 16 MiB stacks).
pub(crate) const SLOTS_PER_CHUNK: usize = 256;
/// The page size this layout assumes.
pub(crate) const PAGE_SIZE: usize = 4096;
