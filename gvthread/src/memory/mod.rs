//! GVThread memory: fixed 16 MiB slots carved out of large reservations.
//!
//! # Slot layout
//!
//! ```text
//!   slot_base + SLOT_SIZE  +-------------------------------+
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
//! Slots are reserved in chunks of [`SLOTS_PER_CHUNK`] (4 GiB of address space
//! each) as the number of live GVThreads grows, so a runtime that never has more
//! than a few hundred GVThreads reserves a single chunk, and many runtimes fit in
//! one process. A chunk is a single `mmap(PROT_READ | PROT_WRITE,
//! MAP_NORESERVE)`: no physical memory and no commit charge until a page is
//! touched. Guard pages are *guard markers* (`madvise(MADV_GUARD_INSTALL)`,
//! Linux 6.13+) which live in the page tables and do not split the mapping, so a
//! chunk stays one kernel mapping however many guards it holds. On older
//! kernels the guard is an `mprotect(PROT_NONE)` page, which splits the mapping
//! (two kernel mappings per slot): the pool then refuses to promise more slots
//! than `vm.max_map_count` allows, with an error saying what to change.
//!
//! Chunks start at an address that is 1 MiB past a 2 MiB boundary, so the guard
//! page of slot *i + 1* and the top page of slot *i* share one page-table page:
//! an idle GVThread costs one data page plus (amortised) one page-table page.
//!
//! # Stack overflow
//!
//! [`guard`] installs a process-wide `SIGSEGV` handler. Every pool registers
//! its chunk table with it, so a fault in the guard page of any live runtime's
//! slot is reported as `gvthread: stack overflow in GVThread
//! <slot>.<generation> (16 MiB stack)` before the process aborts; other faults
//! go to the previous handler. Rust frames larger than a page are probed page
//! by page, so no frame can step over the one-page guard into the slot below.
//!
//! # Reuse
//!
//! Freed slots go on a LIFO free list and keep their pages: a reused slot
//! costs no system call. When more than [`SlotPool::RETAIN_HOT`] slots sit
//! free, the timer thread gives the pages of the coldest ones back with
//! `madvise(MADV_DONTNEED)`, in batches, keeping the reservation.

mod guard;
mod os;
mod slots;

pub(crate) use guard::ensure_altstack;
pub(crate) use os::{GuardScheme, current_map_count, max_map_count, probe_guard_scheme};
pub(crate) use slots::{AllocError, SlotCache, SlotPool};

/// Size of one GVThread slot: header + stack + guard page.
pub(crate) const SLOT_SIZE: usize = 16 * 1024 * 1024;
/// Size of the inaccessible guard page at the bottom of each slot.
pub(crate) const GUARD_SIZE: usize = 4096;
/// Slots per reservation chunk (4 GiB of address space).
pub(crate) const SLOTS_PER_CHUNK: usize = 256;
/// The page size this layout assumes.
pub(crate) const PAGE_SIZE: usize = 4096;
