//! Stack compaction: the stacks of long-parked GVThreads are copied into
//! small heap buffers and their pages, page tables included, go back to the
//! OS; whoever resumes such a GVThread copies the bytes back first, to the
//! same addresses, so every pointer into its stack stays valid.
//!
//! # Why
//!
//! A parked GVThread typically uses one or two KiB of its stack, but holds a
//! whole 4 KiB page, and the page-table page mapping it (its slot's top page
//! sits in a 2 MiB range of its own, shared only with the guard page of the
//! slot above): about 8.5 KB each. Compacted, it holds its used bytes only.
//!
//! # Protocol
//!
//! Two bits of the slot's state word (`task::state`) carry it. `COMPACTING`
//! is a lock bit: whoever sets it (with a compare-and-swap that requires it
//! clear) owns the slot's stack memory until it clears it. `COMPACTED` says
//! the bytes are in the buffer named by the chunk's `compact` side table.
//! Neither changes the kind, so wakers are unaware of them: `Shared::wake`
//! turns `PARKED` into `ACTIVE` keeping every other bit, and queues the
//! GVThread as usual. That is what makes a wake racing with compaction
//! harmless, and what keeps the wake path free of blocking and allocation
//! (it may run in a GVThread that a signal could freeze).
//!
//! * **Compactor** (the timer thread, inside `SlotPool::housekeep`, in
//!   batches). For a slot whose word is `PARKED` with neither bit, parked
//!   longer than the threshold: allocate a buffer *first* (never while
//!   holding a lock bit: the allocator's locks may be held by a frozen
//!   GVThread), then `PARKED -> PARKED | COMPACTING` (CAS on the whole word).
//!   Holding the bit, read the saved stack pointer from the header, copy
//!   `[sp, top)` to the buffer, and, if the GVThread is still parked, remove
//!   the slot's guard marker and `MADV_DONTNEED` the whole slot (the kernel
//!   frees the page-table page of every 2 MiB range left empty: no page, no
//!   guard marker). Then publish the buffer (Release) and set `COMPACTED`.
//!   Still holding `COMPACTING`, it tries to empty the 2 MiB ranges the slot
//!   shares with its neighbours ([`SlotPool::zap_shared`]): only when every
//!   neighbour in the range is compacted too, and held with its own
//!   `COMPACTING` bit meanwhile. Slots of [`KEEP_TABLES_MAX`] or less keep
//!   their guard marker (and so their share of a page-table page): only the
//!   pages above the guard are discarded. Then it clears `COMPACTING`
//!   (Release). If the GVThread was woken while being copied, the compactor
//!   gives up instead: it clears `COMPACTING` and discards nothing.
//! * **Restorer** (whoever takes a GVThread off a run queue to resume it:
//!   the two resume points in `sched::machine`). A plain load of the word: if
//!   either bit is set, wait while `COMPACTING` is held (the holder is a
//!   copy and a few system calls away from clearing it, and takes no lock
//!   meanwhile), then take `COMPACTED | COMPACTING` with a CAS, reinstall the
//!   guard if it was removed, copy the bytes back, hand the buffer to the
//!   compactor for freeing (a lock-free push: the restorer allocates and
//!   frees nothing), and clear both bits (Release: the next compactor sees
//!   the stack).
//!
//! # Why it is correct
//!
//! * The stack is only read or discarded while `COMPACTING` is held, and only
//!   written by the restorer while it holds it. The GVThread itself runs
//!   only after a restorer saw both bits clear (or cleared them), so it never
//!   runs on a discarded stack; the compactor takes the bit only from a
//!   `PARKED` word, whose context and stack were published by the Release of
//!   `finish_park` (our CAS acquires it).
//! * A wake in between is never lost: it changes the kind, not our bits, and
//!   the GVThread it queues is restored by whoever dequeues it.
//! * Emptying a shared 2 MiB range discards bytes of several slots: all of
//!   them are held (`COMPACTING`) and compacted (their bytes are in buffers),
//!   so nobody can be restoring into the range meanwhile.
//! * A compacted GVThread has no guard marker, but it does not run; the
//!   restorer puts the guard back before it does (and aborts the process if
//!   the kernel refuses, as for an allocation failure: running without a
//!   guard would let an overflow go unnoticed).
//! * A writer into a waiting GVThread's stack (a channel sender filling a
//!   blocked receiver's hand-off slot, see [`SlotPool::with_stack_held`])
//!   holds `COMPACTING` too, on whatever kind the word has (the receiver may
//!   not have parked yet), and writes into the buffer if the stack is
//!   compacted: the restorer copies its write back with the rest. Holding
//!   the bit also keeps a compaction from starting mid-write.
//! * Other readers of a parked GVThread's slot: `Handle::dump` skips the
//!   frames of compacted GVThreads (it holds a parked one by making it
//!   `ACTIVE`, which our CAS then refuses); the overflow handler only looks
//!   at running GVThreads; the scavenger only at free slots.

use std::alloc::{Layout, alloc, dealloc};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::GUARD_SIZE;
use super::os::{self, GuardScheme};
use super::slots::SlotPool;
use crate::task::header::{HEADER_SIZE, Header};
use crate::task::state::{self, COMPACTED, COMPACTING, PARKED};

/// The span mapped by one page-table page.
const PT_SPAN: usize = 2 * 1024 * 1024;
/// Slots this size or smaller keep their guard marker and page-table pages
/// when compacted: eight or more of them share a page-table page, so keeping
/// it costs at most 512 B per GVThread, and their restore then makes no
/// system call and allocates nothing but the data page its copy faults in
/// (larger slots give both back: a 16 MiB slot's top page has a page-table
/// page of its own, 4 KiB).
const KEEP_TABLES_MAX: usize = PT_SPAN / 8;
/// GVThreads using more stack than this are not compacted (the copy would
/// make their wake slow, and the saving is small beside their stack).
pub(crate) const MAX_COMPACT: usize = 64 * 1024;
/// Slots looked at per pass.
const SCAN_PER_PASS: usize = 64 * 1024;
/// GVThreads compacted per pass (a pass is a few ms of the timer thread).
const COMPACT_PER_PASS: usize = 512;
/// Pause between passes while a sweep is under way.
const BUSY_INTERVAL: Duration = Duration::from_millis(1);
/// Number of buckets of [`CompactStats::latency`]: bucket `i` counts restores
/// that took less than `2^i` µs (and at least `2^(i-1)`); the last one the rest.
pub(crate) const LATENCY_BUCKETS: usize = 16;
/// Buffer capacities are rounded to this.
const BUF_ROUND: usize = 128;

/// Marks the calling GVThread's stack as reachable by other threads while it
/// parks, for as long as the guard lives: such a GVThread is never compacted
/// (a write by another thread into a discarded page would be lost when the
/// stack is restored over it).
///
/// Held around the parks of a `select` (its context is on the stack, and a
/// counterpart claims it), of `block_on` (the future is pinned on the stack,
/// and futures may register pinned parts of themselves with other threads,
/// as intrusive wait lists do) and of a blocking receive of values aligned
/// beyond 16 bytes. Other blocking receives are compactable: their sender
/// writes through [`SlotPool::with_stack_held`] (see `sync::chan::handoff`).
/// Costs a thread-local read and a store to the GVThread's own side-table
/// word; nothing outside a GVThread.
pub(crate) struct StackExposed(*const AtomicU32);

impl StackExposed {
    /// Marks the caller's stack exposed (a no-op outside a GVThread).
    #[inline]
    pub(crate) fn enter() -> StackExposed {
        match crate::sched::machine::current_gvthread() {
            Some((m, slot)) => {
                let (chunk, k) = m.shared.slots.chunk_and_index(slot);
                let c = chunk.exposed_at(k);
                // Only this GVThread writes its word: no RMW needed; its park
                // publishes the value to the compactor.
                c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                StackExposed(c)
            }
            None => StackExposed(ptr::null()),
        }
    }
}

impl Drop for StackExposed {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: a side-table word of the GVThread that made the guard (and
        // drops it: the guard is not Send); chunks outlive their GVThreads.
        if let Some(c) = unsafe { self.0.as_ref() } {
            c.store(c.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
        }
    }
}

/// Where bytes of a waiting GVThread's stack are while a writer holds it
/// (see [`SlotPool::with_stack_held`]).
pub(crate) enum StackAt {
    /// In place, at the address asked about.
    Live,
    /// Compacted: their copy in the GVThread's buffer starts here. The copy
    /// has the same alignment modulo 16 as the original (the buffer's data
    /// and the copied range both start 16-aligned).
    Saved(*mut u8),
}

/// Head of a compact buffer; the saved bytes follow at [`HEAD`].
#[repr(C, align(16))]
struct Buf {
    /// Link in the garbage list.
    next: *mut Buf,
    /// Allocation size (head included).
    cap: usize,
    /// Bytes saved: the stack from `top - len` to the slot's top.
    len: usize,
    /// The slot's guard marker was removed (the restorer reinstalls it).
    guard_removed: bool,
}

const HEAD: usize = size_of::<Buf>().next_multiple_of(16);

impl Buf {
    fn layout(cap: usize) -> Layout {
        Layout::from_size_align(cap, 16).expect("compact buffer layout")
    }

    /// A buffer for `len` bytes. Allocates: never call it while holding a
    /// `COMPACTING` bit.
    fn new(len: usize) -> *mut Buf {
        let cap = (HEAD + len).next_multiple_of(BUF_ROUND);
        let layout = Buf::layout(cap);
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc(layout) }.cast::<Buf>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: fresh allocation large and aligned enough for a Buf.
        unsafe { p.write(Buf { next: ptr::null_mut(), cap, len: 0, guard_removed: false }) };
        p
    }

    /// Frees a buffer made by [`Buf::new`].
    ///
    /// # Safety
    /// `p` came from [`Buf::new`] and nobody uses it any more.
    unsafe fn free(p: *mut Buf) {
        // SAFETY: per the contract, allocated with this layout.
        unsafe { dealloc(p.cast(), Buf::layout((*p).cap)) };
    }

    /// The saved bytes.
    fn data(p: *mut Buf) -> *mut u8 {
        p.cast::<u8>().wrapping_add(HEAD)
    }

    /// Bytes this buffer can hold.
    ///
    /// # Safety
    /// `p` is a live buffer.
    unsafe fn room(p: *mut Buf) -> usize {
        // SAFETY: per the contract.
        unsafe { (*p).cap - HEAD }
    }
}

/// Compaction state of a pool, and its counters.
pub(crate) struct CompactStats {
    /// Threshold in ns (0: compaction off).
    after_ns: AtomicU64,
    /// Serialises passes (only the timer thread runs them; `try_lock`).
    pass: Mutex<Pass>,
    /// Buffers of restored GVThreads, for the compactor to free (a
    /// Treiber stack: pushed by restorers, taken whole by the compactor,
    /// so no ABA).
    garbage: AtomicPtr<Buf>,
    /// GVThreads compacted now.
    pub(crate) compacted: AtomicUsize,
    /// Bytes held by compact buffers now (allocation sizes).
    pub(crate) bytes: AtomicU64,
    /// Compactions done.
    pub(crate) compactions: AtomicU64,
    /// Restores done.
    pub(crate) restores: AtomicU64,
    /// Restore latency histogram (see [`LATENCY_BUCKETS`]).
    pub(crate) latency: [AtomicU64; LATENCY_BUCKETS],
}

/// The compactor's own state, under [`CompactStats::pass`].
struct Pass {
    /// Next slot to look at.
    cursor: u32,
    /// When the next pass is due.
    next_at: Instant,
    /// A buffer allocated ahead, not yet used.
    spare: *mut Buf,
    /// A slot in use was seen during the current sweep.
    saw_alive: bool,
}

// SAFETY: `spare` is an owned allocation only touched under the mutex.
unsafe impl Send for Pass {}

impl CompactStats {
    pub(crate) fn new() -> CompactStats {
        CompactStats {
            after_ns: AtomicU64::new(0),
            pass: Mutex::new(Pass { cursor: 0, next_at: Instant::now(), spare: ptr::null_mut(), saw_alive: false }),
            garbage: AtomicPtr::new(ptr::null_mut()),
            compacted: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            restores: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Pushes a buffer for the compactor to free. Lock-free, allocation-free.
    fn discard(&self, b: *mut Buf) {
        let mut head = self.garbage.load(Ordering::Relaxed);
        loop {
            // SAFETY: `b` is ours until the CAS below publishes it.
            unsafe { (*b).next = head };
            // Release: the link is visible to the compactor's Acquire swap.
            match self.garbage.compare_exchange_weak(head, b, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Frees every discarded buffer.
    fn free_garbage(&self) {
        let mut p = self.garbage.swap(ptr::null_mut(), Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: taken off the list, so ours alone.
            let next = unsafe { (*p).next };
            // SAFETY: made by `Buf::new`, no longer referenced.
            unsafe { Buf::free(p) };
            p = next;
        }
    }
}

impl Drop for CompactStats {
    fn drop(&mut self) {
        self.free_garbage();
        let pass = self.pass.get_mut().unwrap_or_else(|e| e.into_inner());
        if !pass.spare.is_null() {
            // SAFETY: an unused buffer owned by the pass state.
            unsafe { Buf::free(pass.spare) };
        }
    }
}

/// Outcome of one compaction attempt.
enum Attempt {
    Done,
    /// Parked for less than the threshold (or woken meanwhile).
    Skipped,
    /// The spare buffer is too small: allocate this much and retry.
    NeedRoom(usize),
}

impl SlotPool {
    /// Sets the compaction threshold (`None`: off).
    pub(crate) fn set_compact_after(&self, after: Option<Duration>) {
        let ns = after.map_or(0, |d| d.as_nanos().clamp(1, u64::MAX as u128) as u64);
        self.compact.after_ns.store(ns, Ordering::Relaxed);
    }

    /// The compaction counters.
    pub(crate) fn compact_stats(&self) -> &CompactStats {
        &self.compact
    }

    /// One compaction pass (the timer thread, from `housekeep`): looks at up
    /// to [`SCAN_PER_PASS`] slots and compacts up to [`COMPACT_PER_PASS`]
    /// GVThreads parked for longer than the threshold. Returns when it wants
    /// to run again (`None`: compaction is off or no slot is in use).
    pub(super) fn compact_pass(&self) -> Option<Duration> {
        let after = self.compact.after_ns.load(Ordering::Relaxed);
        if after == 0 {
            return None;
        }
        let Ok(mut pass) = self.compact.pass.try_lock() else { return Some(BUSY_INTERVAL) };
        self.compact.free_garbage();
        let now = Instant::now();
        if now < pass.next_at {
            return Some(pass.next_at - now);
        }
        let sweep = Duration::from_nanos(after / 2).clamp(Duration::from_millis(1), Duration::from_secs(1));
        let used = self.used();
        let now_ns = crate::util::clock::coarse_nanos();
        let (mut scanned, mut done, mut alive) = (0, 0, false);
        let mut wrapped = false;
        while scanned < SCAN_PER_PASS && done < COMPACT_PER_PASS {
            if pass.cursor >= used {
                pass.cursor = 0;
                wrapped = true;
                break;
            }
            let slot = pass.cursor;
            pass.cursor += 1;
            scanned += 1;
            let word = self.state(slot).load(Ordering::Acquire);
            if state::kind(word) == state::FREE {
                continue;
            }
            alive = true;
            if state::kind(word) != PARKED || word & (COMPACTING | COMPACTED) != 0 {
                continue;
            }
            // SAFETY: the slot holds a live GVThread (its word is PARKED), so
            // its header is mapped and initialised; `wait` is atomics.
            let since = unsafe { (*self.header_of(slot)).wait.read().1 };
            if now_ns.saturating_sub(since) < after {
                continue;
            }
            // Two tries: the second with a buffer of the size asked for.
            for _ in 0..2 {
                if pass.spare.is_null() {
                    pass.spare = Buf::new(1024);
                }
                match self.try_compact(slot, word, pass.spare) {
                    Attempt::Done => {
                        pass.spare = ptr::null_mut();
                        done += 1;
                        break;
                    }
                    Attempt::Skipped => break,
                    Attempt::NeedRoom(len) => {
                        // SAFETY: the spare is ours and unused.
                        unsafe { Buf::free(pass.spare) };
                        pass.spare = Buf::new(len);
                    }
                }
            }
        }
        pass.saw_alive |= alive;
        if wrapped {
            pass.next_at = now + sweep;
            // Nothing alive in a whole sweep: no need to come back until
            // woken (a GVThread that runs wakes the timer thread, see
            // `Shared::wake_monitor`).
            if !std::mem::take(&mut pass.saw_alive) {
                return None;
            }
            Some(sweep)
        } else {
            pass.next_at = now + BUSY_INTERVAL;
            Some(BUSY_INTERVAL)
        }
    }

    /// The header of `slot`.
    fn header_of(&self, slot: u32) -> *mut Header {
        self.top(slot).wrapping_sub(HEADER_SIZE).cast()
    }

    /// Compacts the parked GVThread in `slot` (state `word`) into `buf`.
    fn try_compact(&self, slot: u32, word: u64, buf: *mut Buf) -> Attempt {
        let st = self.state(slot);
        // Acquire: pairs with `finish_park`'s Release (context and stack
        // are complete). Only from a PARKED word without our bits.
        if st.compare_exchange(word, word | COMPACTING, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return Attempt::Skipped;
        }
        let (chunk, k) = self.chunk_and_index(slot);
        // Relaxed: the GVThread wrote it before it parked, which our CAS
        // acquired; it cannot change while we hold the bit.
        if chunk.exposed_at(k).load(Ordering::Relaxed) != 0 {
            self.unlock(slot);
            return Attempt::Skipped;
        }
        let top = self.top(slot) as usize;
        let base = self.base(slot) as usize;
        // SAFETY: we hold COMPACTING on a parked GVThread: its saved context
        // in the header is stable until we let go.
        let sp = unsafe { (*(*self.header_of(slot)).ctx.get()).sp };
        let lo = sp & !15;
        if lo < base + GUARD_SIZE || lo >= top || top - lo > MAX_COMPACT {
            self.unlock(slot);
            return Attempt::Skipped;
        }
        let len = top - lo;
        // SAFETY: `buf` is the caller's live spare.
        if unsafe { Buf::room(buf) } < len {
            self.unlock(slot);
            return Attempt::NeedRoom(len);
        }
        // SAFETY: `[lo, top)` is the used part of a stack nobody runs or
        // writes while we hold COMPACTING; the buffer has room for it.
        unsafe { ptr::copy_nonoverlapping(lo as *const u8, Buf::data(buf), len) };
        if state::kind(st.load(Ordering::Acquire)) != PARKED {
            // Woken while we copied: its resumer is waiting for us.
            self.unlock(slot);
            return Attempt::Skipped;
        }
        let guard_removed = chunk.slot_size > KEEP_TABLES_MAX
            && self.guard == GuardScheme::Marker
            // SAFETY: the guard page of a slot whose GVThread does not run
            // until a restorer puts the guard back.
            && unsafe { os::remove_guard(base as *mut u8, GUARD_SIZE) }.is_ok();
        // SAFETY: `buf` is ours; the slot's bytes are saved in it, and nothing
        // else lives in the slot (guard page, unused stack below `lo`).
        unsafe {
            (*buf).len = len;
            (*buf).guard_removed = guard_removed;
            // Without its marker removed (a small slot, or the `mprotect`
            // scheme, where it is a mapping of its own), the guard page is
            // left out, and the marker keeps the page-table page alive.
            let from = if guard_removed { base } else { base + GUARD_SIZE };
            os::discard(from as *mut u8, top - from);
        }
        // Release (with the word's Release below): the buffer's contents.
        chunk.compact[k].store(buf.cast(), Ordering::Release);
        let c = &self.compact;
        c.compacted.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `buf` is live.
        c.bytes.fetch_add(unsafe { (*buf).cap } as u64, Ordering::Relaxed);
        c.compactions.fetch_add(1, Ordering::Relaxed);
        st.fetch_or(COMPACTED, Ordering::Release);
        if guard_removed {
            self.zap_shared(slot);
        }
        self.unlock(slot);
        Attempt::Done
    }

    /// Runs `f` while `slot`'s stack can be neither compacted nor restored,
    /// telling it where the `len` bytes at `addr` (inside the used part of
    /// the stack) are now: in place, or in the compact buffer. For a party
    /// that writes into the stack of a GVThread waiting in a primitive of
    /// ours (a sender filling a blocked receiver's hand-off slot); the
    /// GVThread must be unable to leave that wait meanwhile (the writer holds
    /// the lock the waiter needs to leave).
    ///
    /// With compaction off, just `f(StackAt::Live)`. Otherwise it holds
    /// `COMPACTING` around `f`, waiting first for a compactor or restorer
    /// holding it (a copy and a few system calls from done); a running
    /// GVThread may carry the bit meanwhile, which every transition keeps
    /// (they are compare-and-swaps on the whole word) and which a resumer
    /// waits out. `f` must not block, allocate or unwind.
    #[inline]
    pub(crate) fn with_stack_held<R>(&self, slot: u32, addr: usize, len: usize, f: impl FnOnce(StackAt) -> R) -> R {
        // Relaxed: set once, before the runtime's first GVThread.
        if self.compact.after_ns.load(Ordering::Relaxed) == 0 {
            return f(StackAt::Live);
        }
        self.with_stack_held_compacting(slot, addr, len, f)
    }

    /// [`with_stack_held`](Self::with_stack_held) in a runtime that compacts.
    #[inline(never)]
    fn with_stack_held_compacting<R>(&self, slot: u32, addr: usize, len: usize, f: impl FnOnce(StackAt) -> R) -> R {
        let word = self.hold(slot);
        let at = if word & COMPACTED != 0 {
            let (chunk, k) = self.chunk_and_index(slot);
            let buf = chunk.compact[k].load(Ordering::Acquire).cast::<Buf>();
            let top = self.top(slot) as usize;
            // SAFETY: `COMPACTED` and our bit: the buffer is published and
            // nobody frees or restores it while we hold the bit.
            let saved = unsafe { (*buf).len };
            if addr < top - saved || addr + len > top {
                // Not in the saved bytes: a write there would be lost (a bug
                // in the caller's protocol); never corrupt silently.
                std::process::abort();
            }
            StackAt::Saved(Buf::data(buf).wrapping_add(addr - (top - saved)))
        } else {
            StackAt::Live
        };
        let r = f(at);
        self.unlock(slot);
        r
    }

    /// Takes `slot`'s `COMPACTING` bit, waiting while someone else holds it
    /// (a compactor, restorer or writer: a copy and a few system calls from
    /// done, taking no lock meanwhile). Returns the word it was taken from.
    fn hold(&self, slot: u32) -> u64 {
        let st = self.state(slot);
        let mut spins = 0u32;
        loop {
            let w = st.load(Ordering::Acquire);
            if w & COMPACTING != 0 {
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                continue;
            }
            // Acquire: the previous holder's accesses to the stack and the
            // buffer it published (before its Release).
            if st.compare_exchange_weak(w, w | COMPACTING, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return w;
            }
        }
    }

    /// Clears `slot`'s `COMPACTING` bit (Release: our accesses to its stack
    /// happen-before the next holder's).
    fn unlock(&self, slot: u32) {
        self.state(slot).fetch_and(!COMPACTING, Ordering::Release);
    }

    /// Empties the 2 MiB ranges that `slot` (compacted, held) shares with
    /// neighbouring slots of its chunk, when all of those are compacted
    /// (held meanwhile), so the kernel frees their page-table pages. Ranges
    /// that reach outside the chunk's reservation are left alone.
    fn zap_shared(&self, slot: u32) {
        let (chunk, k) = self.chunk_and_index(slot);
        let cbase = chunk.base as usize;
        let cend = cbase + chunk.bytes();
        let size = chunk.slot_size;
        let base = cbase + k * size;
        let top = base + size;
        let first = base & !(PT_SPAN - 1);
        let last = (top - 1) & !(PT_SPAN - 1);
        let mut r = first;
        while r <= last {
            let end = r + PT_SPAN;
            let inside = r >= base && end <= top;
            if !inside && r >= cbase && end <= cend {
                let lo = (r - cbase) / size;
                let hi = (end - 1 - cbase) / size;
                let chunk_first = slot - k as u32;
                self.zap_range(chunk_first, k, lo, hi, r);
            }
            r = end;
        }
    }

    /// Empties `[r, r + PT_SPAN)`, which covers slots `lo..=hi` of the chunk
    /// starting at slot id `chunk_first`, slot `own` of them being held by
    /// the caller, if every other one can be held compacted.
    fn zap_range(&self, chunk_first: u32, own: usize, lo: usize, hi: usize, r: usize) {
        let ok = |word: u64| word & COMPACTED != 0 && word & COMPACTING == 0;
        // A read-only look first: most attempts fail on a neighbour.
        if !(lo..=hi).filter(|&i| i != own).all(|i| ok(self.state(chunk_first + i as u32).load(Ordering::Relaxed))) {
            return;
        }
        // Hold the others; `stop` is where holding failed (hi + 1: never).
        let mut stop = hi + 1;
        for i in lo..=hi {
            if i == own {
                continue;
            }
            let st = self.state(chunk_first + i as u32);
            let w = st.load(Ordering::Acquire);
            // Acquire: the neighbour's compaction (its discard) happened.
            if !ok(w) || st.compare_exchange(w, w | COMPACTING, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                stop = i;
                break;
            }
        }
        if stop == hi + 1 {
            // SAFETY: every slot overlapping the range is compacted (its
            // bytes are in its buffer, its guard marker removed) and held
            // by us, so nobody restores into it meanwhile.
            unsafe { os::discard(r as *mut u8, PT_SPAN) };
        }
        for i in lo..stop {
            if i != own {
                self.unlock(chunk_first + i as u32);
            }
        }
    }

    /// Restores `slot`'s stack if it is compacted. Called by whoever is
    /// about to resume the GVThread in `slot`, before anything reads its
    /// header or stack. A plain load when nothing is compacted.
    /// `st` is `slot`'s state word.
    #[inline]
    pub(crate) fn restore_if_compacted(&self, slot: u32, st: &AtomicU64) {
        // Relaxed: the run queue we took `slot` from ordered the waker's
        // CAS (which carried our bits along) before this load.
        if st.load(Ordering::Relaxed) & (COMPACTING | COMPACTED) != 0 {
            self.restore(slot);
        }
    }

    #[cold]
    #[inline(never)]
    fn restore(&self, slot: u32) {
        let start = Instant::now();
        let st = self.state(slot);
        if self.hold(slot) & COMPACTED == 0 {
            // The compactor gave up (or a writer held the stack).
            self.unlock(slot);
            return;
        }
        let (chunk, k) = self.chunk_and_index(slot);
        let buf = chunk.compact[k].swap(ptr::null_mut(), Ordering::Acquire).cast::<Buf>();
        debug_assert!(!buf.is_null(), "compacted slot {slot} without a buffer");
        let top = self.top(slot);
        // SAFETY: published by the compactor before COMPACTED; ours now.
        let (len, cap, guard_removed) = unsafe { ((*buf).len, (*buf).cap, (*buf).guard_removed) };
        if guard_removed {
            self.reinstall_guard(self.base(slot));
        }
        // SAFETY: we hold COMPACTING: nobody else touches the slot's stack;
        // the buffer holds the `len` bytes that were below `top`.
        unsafe { ptr::copy_nonoverlapping(Buf::data(buf), top.wrapping_sub(len), len) };
        let c = &self.compact;
        c.discard(buf);
        c.compacted.fetch_sub(1, Ordering::Relaxed);
        c.bytes.fetch_sub(cap as u64, Ordering::Relaxed);
        c.restores.fetch_add(1, Ordering::Relaxed);
        // Release: the restored bytes happen-before the GVThread runs (on
        // this thread anyway) and before the next compaction reads them.
        st.fetch_and(!(COMPACTING | COMPACTED), Ordering::Release);
        let us = start.elapsed().as_micros() as u64;
        let bucket = (u64::BITS - us.leading_zeros()) as usize;
        c.latency[bucket.min(LATENCY_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Puts a removed guard marker back. Retries transient refusals; aborts
    /// if the kernel keeps refusing (the GVThread must not run unguarded).
    fn reinstall_guard(&self, page: *mut u8) {
        for _ in 0..100 {
            // SAFETY: the guard page of a slot we hold; nothing lives there.
            if unsafe { os::install_guard(GuardScheme::Marker, page, GUARD_SIZE) }.is_ok() {
                return;
            }
            std::thread::yield_now();
        }
        std::process::abort();
    }

    /// Frees the buffers of GVThreads still compacted when the pool is
    /// dropped without abandoned GVThreads (none should be left).
    pub(super) fn free_compact_buffers(&self) {
        for c in self.table.reserved() {
            let p = c.load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: chunks live as long as the pool.
            let chunk = unsafe { &*p };
            for b in chunk.compact.iter() {
                let b = b.swap(ptr::null_mut(), Ordering::AcqRel).cast::<Buf>();
                if !b.is_null() {
                    // SAFETY: made by `Buf::new`, swapped out: ours alone.
                    unsafe { Buf::free(b) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use crate::task::state::{self, COMPACTING, PARKED};
    use crate::{Runtime, SchedMutex, SchedulerConfig};

    /// A wake that lands while the stack is held (as the compactor holds it
    /// mid-copy) queues the GVThread as usual, and whoever takes it off the
    /// queue waits for the holder before the GVThread runs; nothing is lost.
    #[test]
    fn a_wake_while_held_waits_for_the_holder() {
        // No background compactor: this test plays its part by hand.
        // SAFETY: `None` turns compaction off.
        let rt = Runtime::new(unsafe { SchedulerConfig::default().num_workers(1).compact_idle_after(None) });
        let h = rt.handle();
        let lock = Arc::new(SchedMutex::new(()));
        let held = lock.lock();
        let ran = Arc::new(AtomicBool::new(false));
        let (l, r) = (lock.clone(), ran.clone());
        let g = h.spawn(move |_| {
            drop(l.lock());
            r.store(true, Ordering::SeqCst);
        });
        let slot = g.id().slot();
        let st = h.shared.slots.state(slot);
        let limit = Instant::now() + Duration::from_secs(20);
        // Wait until it is parked on the lock, then hold its stack.
        loop {
            let w = st.load(Ordering::Acquire);
            if state::kind(w) == PARKED
                && st.compare_exchange(w, w | COMPACTING, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                break;
            }
            assert!(Instant::now() < limit, "the GVThread never parked");
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held); // the wake: PARKED -> ACTIVE, queued, COMPACTING kept
        assert!(st.load(Ordering::Acquire) & COMPACTING != 0, "a wake must keep the bit");
        // Its worker takes it off the queue and waits for us.
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(1));
            assert!(!ran.load(Ordering::SeqCst), "ran while its stack was held");
        }
        st.fetch_and(!COMPACTING, Ordering::Release);
        g.join().unwrap();
        assert!(ran.load(Ordering::SeqCst));
    }

    /// A compacted GVThread of a small class keeps its guard marker (and so
    /// its page-table page); one of the default class gives it back when
    /// guards are markers.
    #[test]
    fn small_classes_keep_their_guard_when_compacted() {
        // SAFETY: the GVThreads only park in `recv`; nobody else touches
        // their stacks.
        let rt = Runtime::new(unsafe {
            SchedulerConfig::default().num_workers(1).compact_idle_after(Some(Duration::from_millis(1)))
        });
        let h = rt.handle();
        let (tx, rx) = crate::channel::<()>(0);
        let spawn = |stack: Option<usize>| {
            let rx = rx.clone();
            let b = crate::Builder::new();
            let b = match stack {
                Some(bytes) => b.stack_size(bytes),
                None => b,
            };
            b.spawn_on(&h, move |_| rx.recv().is_err()).unwrap()
        };
        let small = spawn(Some(super::KEEP_TABLES_MAX));
        let default = spawn(None);
        let limit = Instant::now() + Duration::from_secs(20);
        while h.metrics().compacted_gvthreads < 2 {
            assert!(Instant::now() < limit, "never compacted: {:?}", h.metrics());
            std::thread::sleep(Duration::from_millis(1));
        }
        let slots = &h.shared.slots;
        let guard_removed = |slot: u32| {
            let word = slots.hold(slot);
            assert!(word & state::COMPACTED != 0, "slot {slot} not compacted");
            let (chunk, k) = slots.chunk_and_index(slot);
            let buf = chunk.compact[k].load(Ordering::Acquire).cast::<super::Buf>();
            // SAFETY: published before COMPACTED, and not restored or freed
            // while we hold the slot's bit.
            let removed = unsafe { (*buf).guard_removed };
            slots.unlock(slot);
            removed
        };
        assert!(!guard_removed(small.id().slot()), "a 256 KiB slot gave its guard back");
        assert_eq!(guard_removed(default.id().slot()), slots.guard == super::GuardScheme::Marker);
        drop(tx);
        assert!(small.join().unwrap() && default.join().unwrap());
    }
}

/// The writer's protocol against a compaction (loom): a writer holding the
/// lock bit around its write, as [`SlotPool::with_stack_held`] does, never
/// loses its write, whether the compactor runs before it (the write goes to
/// the saved copy) or after it (the copy includes it). The stack, the
/// buffer and the word are abstracted to two cells and one atomic; the
/// compactor, the writer and the restorer are the real protocol's steps.
/// Run: `RUSTFLAGS="--cfg loom" cargo test -p gvthread --lib --release loom_`.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU64, Ordering};

    use crate::task::state::{COMPACTED, COMPACTING};

    struct Model {
        word: AtomicU64,
        /// The receiver's hand-off slot on its stack (0: empty).
        stack: UnsafeCell<u64>,
        /// Its copy in the compact buffer.
        saved: UnsafeCell<u64>,
    }

    /// Reads a cell; loom reports any access that races with it.
    fn get(c: &UnsafeCell<u64>) -> u64 {
        // SAFETY: a plain read of a `u64`; loom fails the model if another
        // thread may write the cell concurrently (that is what is checked).
        c.with(|p| unsafe { *p })
    }

    /// Writes a cell; loom reports any access that races with it.
    fn set(c: &UnsafeCell<u64>, v: u64) {
        // SAFETY: as for `get`.
        c.with_mut(|p| unsafe { *p = v })
    }

    /// Takes the lock bit, waiting while someone holds it.
    fn hold(m: &Model) -> u64 {
        loop {
            let w = m.word.load(Ordering::Acquire);
            if w & COMPACTING == 0
                && m.word.compare_exchange(w, w | COMPACTING, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return w;
            }
            loom::thread::yield_now();
        }
    }

    #[test]
    fn loom_write_into_a_stack_being_compacted() {
        loom::model(|| {
            let m = Arc::new(Model { word: AtomicU64::new(0), stack: UnsafeCell::new(0), saved: UnsafeCell::new(0) });
            let compactor = {
                let m = m.clone();
                loom::thread::spawn(move || {
                    let w = m.word.load(Ordering::Acquire);
                    if w & (COMPACTING | COMPACTED) != 0
                        || m.word.compare_exchange(w, w | COMPACTING, Ordering::AcqRel, Ordering::Relaxed).is_err()
                    {
                        return; // held by the writer: skip this pass
                    }
                    // Copy, then discard the page (it reads as zero).
                    let v = get(&m.stack);
                    set(&m.saved, v);
                    set(&m.stack, 0);
                    m.word.fetch_or(COMPACTED, Ordering::Release);
                    m.word.fetch_and(!COMPACTING, Ordering::Release);
                })
            };
            // The writer (a sender delivering a value).
            let w = hold(&m);
            if w & COMPACTED != 0 {
                set(&m.saved, 7);
            } else {
                set(&m.stack, 7);
            }
            m.word.fetch_and(!COMPACTING, Ordering::Release);
            compactor.join().unwrap();
            // The restorer, before the receiver runs.
            let w = hold(&m);
            if w & COMPACTED != 0 {
                let v = get(&m.saved);
                set(&m.stack, v);
            }
            m.word.fetch_and(!(COMPACTING | COMPACTED), Ordering::Release);
            assert_eq!(get(&m.stack), 7, "the write survived");
        });
    }
}
