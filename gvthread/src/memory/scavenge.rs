//! Maintenance of the slot pool, run off the spawn path by the timer thread:
//! the *preparer* keeps guarded slots ready ahead of demand, and the
//! *scavenger* gives the memory of slots unused for a while back to the OS,
//! page tables included (Go's background scavenger, for stacks).
//!
//! # Preparer
//!
//! Each class keeps `want` free slots ready (between
//! [`SlotPool::WANT_MIN`] and [`SlotPool::want_cap`]: half the slots the
//! class ever used, and about 16 MiB of page tables). A spawner whose pop
//! leaves fewer than `want / 2` asks for a refill (one wake of the timer
//! thread per refill). The preparer takes slots from the class's
//! `unprepared` stack, then carves never-used slots out of the class's
//! current chunk (reserving a new chunk when it is used up), faults in the
//! page each spawn writes first (while fewer than [`PREFAULT_AHEAD`] slots
//! are free), installs their guard pages in bulk (one `process_madvise` per
//! [`GUARDS_PER_CALL`] guard markers where the kernel has it) and pushes
//! them on the free stack in one compare-and-swap. A spawner that
//! finds nothing prepared doubles `want`; each scavenger pass without such a
//! miss halves it again.
//!
//! # Scavenger
//!
//! A freed slot keeps its pages, so a burst that follows another reuses warm
//! stacks without a page fault. A free slot untouched for [`IDLE_BEFORE_SCAVENGE`]
//! is given back, in passes every [`PASS_INTERVAL`] doing at most
//! [`PASS_SYSCALLS`] system calls each:
//!
//! * a chunk with no slot in use and every free slot idle is *remapped*
//!   (`mmap(MAP_FIXED)` over it): its pages **and page tables** go back in
//!   one call, and its guards with them. Its free slots become `UNGUARDED`:
//!   a spawner that pops one moves it to the `unprepared` stack, so the
//!   preparer, not the spawner, installs the guard again;
//! * otherwise runs of consecutive idle free slots get one
//!   `madvise(MADV_DONTNEED)` per run (guard markers survive it; page
//!   tables stay while the chunk has live slots).
//!
//! The scavenger *claims* each slot it works on (`FREE -> CLAIMED`, a
//! compare-and-swap on the slot's meta byte) and never unlinks it from the
//! free stack; a spawner that pops a claimed slot marks it `ORPHAN` and takes
//! another, and the scavenger pushes orphans back when it is done. So the
//! spawn path never waits for the scavenger.
//!
//! The scavenger keeps as many free slots of a class warm as the class had
//! in use at its peak during the current and the previous
//! [`RETAIN_WINDOW`], plus [`RETAIN_MARGIN_PERCENT`] of that peak (less
//! what is in use now), as Go's scavenger retains memory up to its heap
//! goal plus 10%: a burst repeated within seconds finds its stacks warm even
//! when the burst itself took longer than the idle delay. The margin is
//! wider than Go's because the peak of a repeated burst varies more: with
//! one worker, how many GVThreads are alive at once depends on how often
//! the spawner was preempted (616k to 721k in successive bursts of 1M), and
//! a burst that needs more than the retained slots pays fresh pages, page
//! tables and guards for the rest.
//!
//! **Bound.** Once a peak is over (its GVThreads ended), the memory of its
//! slots returns within `2 × RETAIN_WINDOW + IDLE_BEFORE_SCAVENGE +
//! PASS_INTERVAL × (chunks / PASS_SYSCALLS + 1)`: with the defaults, 12 s
//! plus 50 ms per 16,384 free slots of whole free chunks (a million slots:
//! about 15 s), as long as the timer thread gets CPU. Slots cached by worker
//! roles (32 each) stay warm; those in the depot (`memory::depot`, up to
//! 1,024) come back when every role sleeps, or 2 × `IDLE_BEFORE_SCAVENGE`
//! after the depot's last use, and then follow the same bound.
//!
//! Everything here runs under the pool's maintenance lock and neither
//! allocates nor takes another lock (a spawner may wait for that lock inside
//! its runtime section, see `memory::slots`), except that the `mprotect`
//! fallback reads `/proc/self/maps` to check the mapping budget. The one
//! part that runs without the lock is the slow part of preparing
//! (`ready_picked`: guards, first pages, the push), on slots marked
//! `IN_USE` under the lock when they were picked: the scavenger leaves
//! their chunks alone, and the timer thread and spawners that outran it
//! prepare side by side, each on its own core.

use std::io;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::class::{NUM_CLASSES, StackClass};
use super::os::{self, GuardScheme};
use super::slots::{
    AllocError, CLAIMED, Chunk, DISCARDED, FREE, IN_USE, KIND, Maint, ORPHAN, SlotPool, UNGUARDED, UNPREPARED,
};
use super::{GUARD_SIZE, SLOTS_PER_CHUNK};

/// How long a free slot stays untouched before its memory is given back.
pub(crate) const IDLE_BEFORE_SCAVENGE: Duration = Duration::from_secs(2);
/// Pause between scavenger passes while there is memory to give back.
pub(crate) const PASS_INTERVAL: Duration = Duration::from_millis(50);
/// System calls per scavenger pass (each gives back one chunk or one run).
pub(crate) const PASS_SYSCALLS: usize = 64;
/// How long a peak of slots in use is remembered: free slots up to the peak
/// of the current and the previous window stay warm (Go's scavenger retains
/// memory up to its heap goal the same way), so a burst that repeats within
/// a few seconds finds its stacks warm however long the burst itself took.
pub(crate) const RETAIN_WINDOW: Duration = Duration::from_secs(5);
/// Share of the remembered peak kept warm beyond it, in percent (see
/// "Scavenger").
pub(crate) const RETAIN_MARGIN_PERCENT: usize = 25;
/// Slots prepared per housekeeping round.
const PREPARE_PER_ROUND: usize = 2048;
/// Largest batch the timer thread prepares at once.
const BATCH: usize = 512;
/// Guard markers installed per system call (`process_madvise` where the
/// kernel has it): the page array lives on the preparer's stack, which may
/// be a spawner's small GVThread stack.
const GUARDS_PER_CALL: usize = 64;
/// Free slots of a class below which the preparer also faults in each
/// prepared slot's first page (at most 16 MiB of such pages per class).
const PREFAULT_AHEAD: usize = 4096;
/// Mappings left to the rest of the process under the `mprotect` fallback.
const MAP_MARGIN: usize = 1024;

/// Free slots of a class kept warm: its remembered `peak` in use plus the
/// margin, less the slots `in_use` now (see "Scavenger").
fn retained_free(peak: usize, in_use: usize) -> usize {
    (peak + peak * RETAIN_MARGIN_PERCENT / 100).saturating_sub(in_use)
}

impl SlotPool {
    /// Runs due maintenance: refills for spawners, a scavenger pass, a
    /// compaction pass (`memory::compact`). Returns how soon it wants to run
    /// again (`None`: not until woken). Called by the timer thread, never on
    /// a spawn path.
    pub(crate) fn housekeep(&self) -> Option<Duration> {
        let slots = self.housekeep_slots();
        // Compaction only touches the stacks of live GVThreads, which are
        // never unmapped, and does not take the maintenance lock (it
        // allocates its buffers, which nothing under that lock may do).
        if self.stacks_gone() {
            return slots;
        }
        match (slots, self.compact_pass()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The slot maintenance part of [`housekeep`](Self::housekeep).
    fn housekeep_slots(&self) -> Option<Duration> {
        if self.stacks_gone() {
            return None;
        }
        let Ok(mut mt) = self.maint.try_lock() else { return Some(Duration::from_millis(1)) };
        // Checked again under the lock: `release_stacks` unmaps under it, and
        // a remap over an unmapped range could clobber someone else's mapping.
        if self.stacks_gone() {
            return None;
        }
        let now_ms = self.refresh_epoch();
        let mut again: Option<Duration> = None;
        let mut soon = |d: Duration| again = Some(again.map_or(d, |a: Duration| a.min(d)));
        let mut ids = [0u32; BATCH];
        for i in 0..NUM_CLASSES {
            let cp = &self.classes[i];
            if !cp.refill.swap(false, Ordering::AcqRel) {
                continue;
            }
            let class = StackClass::from_index(i);
            let mut budget = PREPARE_PER_ROUND;
            while budget > 0 {
                let want = cp.want.load(Ordering::Relaxed);
                let have = cp.free.len();
                if have >= want && cp.unprepared.len() == 0 {
                    break;
                }
                let n = want.saturating_sub(have).max(1).min(budget).min(BATCH);
                let prepared = self.prepare_then_unlock(mt, class, n, &mut ids);
                mt = self.maint.lock().unwrap_or_else(|e| e.into_inner());
                match prepared {
                    Ok(done) if done > 0 => budget -= done.min(budget),
                    // Out of memory or map budget: the spawner that needs a
                    // slot will see the error itself.
                    _ => break,
                }
            }
            if budget == 0 {
                cp.refill.store(true, Ordering::Release);
                soon(Duration::ZERO);
            }
        }
        let now = Instant::now();
        // Track the peak number of slots in use per class (approximate: the
        // stacks' lengths are read without a lock).
        if now.duration_since(mt.window_start) >= RETAIN_WINDOW {
            mt.window_start = now;
            for p in mt.peaks.iter_mut() {
                *p = (0, p.0);
            }
        }
        for (i, cp) in self.classes.iter().enumerate() {
            let carved = cp.carved.load(Ordering::Relaxed);
            if carved > 0 {
                let in_use = carved.saturating_sub(cp.free.len() + cp.unprepared.len());
                mt.peaks[i].0 = mt.peaks[i].0.max(in_use);
            }
        }
        // A depot nobody used for `IDLE_BEFORE_SCAVENGE` goes back to the
        // free stacks, where the pass below finds its slots (see
        // `memory::depot`): drained two to four seconds after its last use.
        if self.depot.len() > 0 {
            let since = now.duration_since(mt.depot_look);
            if since >= IDLE_BEFORE_SCAVENGE {
                mt.depot_look = now;
                self.depot.drain_if_unused(|s| {
                    self.release(s);
                });
                soon(IDLE_BEFORE_SCAVENGE);
            } else {
                soon(IDLE_BEFORE_SCAVENGE - since);
            }
        }
        if self.armed.load(Ordering::Acquire) {
            if now >= mt.next_pass {
                // Disarm first (an RMW, see `release`): a slot freed after
                // this re-arms, one freed before is seen by the pass.
                self.armed.swap(false, Ordering::AcqRel);
                let retain: [usize; NUM_CLASSES] = std::array::from_fn(|i| {
                    let cp = &self.classes[i];
                    let in_use = cp.carved.load(Ordering::Relaxed).saturating_sub(cp.free.len() + cp.unprepared.len());
                    retained_free(mt.peaks[i].0.max(mt.peaks[i].1), in_use)
                });
                if self.scavenge_pass(now_ms, retain) {
                    self.armed.store(true, Ordering::Release);
                }
                for cp in &self.classes {
                    if !cp.missed.swap(false, Ordering::Relaxed) {
                        let w = cp.want.load(Ordering::Relaxed);
                        cp.want.store((w / 2).max(Self::WANT_MIN), Ordering::Relaxed);
                    }
                }
                mt.next_pass = now + PASS_INTERVAL;
            }
            if self.armed.load(Ordering::Acquire) {
                soon(mt.next_pass.saturating_duration_since(now));
            }
        }
        again
    }

    /// Makes up to `n` slots of `class` ready and pushes them on its free
    /// stack; returns how many. The caller holds the maintenance lock
    /// throughout (see [`pick`](Self::pick) and
    /// [`ready_picked`](Self::ready_picked) for the split that lets the
    /// slow part run without it). A slot whose guard could not be installed
    /// goes (back) on the `unprepared` stack, never lost. `N` bounds the
    /// batch and sizes the arrays on the caller's stack.
    pub(super) fn prepare<const N: usize>(
        &self,
        mt: &mut Maint,
        class: StackClass,
        n: usize,
    ) -> Result<usize, AllocError> {
        let mut ids = [0u32; N];
        let (count, err) = self.pick(mt, class, n, &mut ids)?;
        self.ready_picked(class, &ids[..count], err)
    }

    /// Prepares up to `n` slots of `class` (at most `ids.len()`), holding the
    /// maintenance lock `mt` only to [`pick`](Self::pick) them and releasing
    /// it for the slow part ([`ready_picked`](Self::ready_picked)), so the
    /// timer thread and a spawner that outran it prepare side by side; the
    /// `mprotect` fallback keeps it to the end. Shutdown cannot unmap the
    /// stacks meanwhile: it does so only once the timer thread is joined and
    /// no spawn is counted live (`runtime::live`), and a spawner that
    /// prepares is one.
    pub(super) fn prepare_then_unlock(
        &self,
        mut mt: MutexGuard<'_, Maint>,
        class: StackClass,
        n: usize,
        ids: &mut [u32],
    ) -> Result<usize, AllocError> {
        let (count, err) = self.pick(&mut mt, class, n, ids)?;
        let _held = if self.guard == GuardScheme::Mprotect {
            Some(mt)
        } else {
            drop(mt);
            None
        };
        self.ready_picked(class, &ids[..count], err)
    }

    /// The part of preparing that needs the maintenance lock (held by the
    /// caller): up to `n` slots of `class` (at most `ids.len()`), from the
    /// `unprepared` stack first, then carved. Each is marked `IN_USE` until
    /// [`ready_picked`](Self::ready_picked) publishes it, so the scavenger
    /// leaves its chunk alone meanwhile. Returns how many, and the error
    /// that stopped carving early, if one did.
    pub(super) fn pick(
        &self,
        mt: &mut Maint,
        class: StackClass,
        n: usize,
        ids: &mut [u32],
    ) -> Result<(usize, Option<AllocError>), AllocError> {
        let cp = &self.classes[class.index()];
        let mut n = n.min(ids.len());
        if self.guard == GuardScheme::Mprotect {
            n = n.min(self.map_room()?);
        }
        let mut count = 0;
        while count < n {
            let Some(s) = cp.unprepared.pop(|s| self.next_link(s)) else { break };
            ids[count] = s;
            count += 1;
        }
        let mut carve_err = None;
        while count < n {
            match self.carve(mt, class) {
                Ok(s) => {
                    ids[count] = s;
                    count += 1;
                }
                Err(e) => {
                    carve_err = Some(e);
                    break;
                }
            }
        }
        for &s in &ids[..count] {
            self.meta(s).store(IN_USE, Ordering::Relaxed);
        }
        Ok((count, carve_err))
    }

    /// The slow part of preparing, which needs no lock: faults in the first
    /// pages of slots [`pick`](Self::pick) chose, installs their guards and
    /// pushes them on the free stack; returns how many, or `err`
    /// (carving's) if none. Preparers on
    /// several threads (the timer thread, spawners that outran it) do this
    /// part side by side. The `mprotect` fallback runs it under the lock,
    /// since its mapping budget counts only mappings already made.
    pub(super) fn ready_picked(
        &self,
        class: StackClass,
        ids: &[u32],
        err: Option<AllocError>,
    ) -> Result<usize, AllocError> {
        let cp = &self.classes[class.index()];
        let count = ids.len();
        let mut carve_err = err;
        // The first page a spawn writes (header, payload, first frame) is
        // faulted in here, off the spawn path: on this kind of machine a
        // first touch costs microseconds, which the preparer pays on its
        // own core while the spawner goes on (a spawner that prepares for
        // itself pays it either way). Only while the class has fewer than
        // `PREFAULT_AHEAD` free slots: that bounds the memory of faulted
        // pages nobody uses yet (a small class may keep many more slots
        // prepared, see `want_cap`).
        let prefault = cp.free.len() < PREFAULT_AHEAD;
        let mut done = 0;
        for group in ids.chunks(GUARDS_PER_CALL) {
            // Each group's first pages before its guards: the top page of a
            // large slot shares its page-table page with the next slot's
            // guard (`memory`), so the fault, which holds only the mapping's
            // own lock, allocates that page-table page, and the guard call,
            // which holds the process's mapping lock for all its guards,
            // finds it there. A spawner growing its heap (`mprotect` needs
            // that lock exclusively) then waits for a short call, not for
            // dozens of page-table pages to be zeroed.
            if prefault {
                // A slot picked and not pushed yet is ours alone; it was never
                // used since it was carved or remapped, so its top page (in
                // its reservation, above the guard) is unmapped or zero.
                for &s in group {
                    // SAFETY: see above: writable, and a zero changes nothing.
                    unsafe { std::ptr::write_volatile(self.top(s).cast::<u64>().sub(1), 0) };
                }
            }
            let mut pages = [std::ptr::null_mut::<u8>(); GUARDS_PER_CALL];
            for (p, &s) in pages.iter_mut().zip(group) {
                *p = self.base(s);
            }
            match self.install_guards(&pages[..group.len()]) {
                Ok(()) => done += group.len(),
                Err((ok, e)) => {
                    carve_err = Some(AllocError::Os(e));
                    done += ok;
                    break;
                }
            }
        }
        // The ones without a guard wait on the unprepared stack.
        for &s in &ids[done..count] {
            self.meta(s).store(UNPREPARED, Ordering::Relaxed);
            cp.unprepared.push(s, self.next_link(s));
        }
        if done > 0 {
            let stamp = self.epoch.load(Ordering::Relaxed);
            for i in 0..done {
                let s = ids[i];
                let c = self.chunk(s);
                let k = s as usize % SLOTS_PER_CHUNK;
                c.freed_at(k).store(stamp, Ordering::Relaxed);
                c.meta_at(k).store(FREE, Ordering::Relaxed);
                if i + 1 < done {
                    c.next_at(k).store(ids[i + 1] + 1, Ordering::Relaxed);
                }
            }
            // One CAS publishes the whole chain (Release inside).
            cp.free.push_chain(ids[0], self.next_link(ids[done - 1]), done);
            // Prepared slots are free slots: let the scavenger know.
            self.armed.store(true, Ordering::Release);
        }
        match carve_err {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Installs guards (test builds can make it fail on purpose).
    fn install_guards(&self, pages: &[*mut u8]) -> Result<(), (usize, io::Error)> {
        #[cfg(test)]
        {
            let fail = self.fail_guards.load(Ordering::Relaxed);
            if fail > 0 && !pages.is_empty() {
                self.fail_guards.store(fail - 1, Ordering::Relaxed);
                return Err((0, io::Error::other("injected guard failure")));
            }
        }
        // SAFETY: every page is the guard page of a slot that is free and
        // owned by the caller (carved or popped from `unprepared` under the
        // maintenance lock); nothing lives there.
        unsafe { os::install_guards(self.guard, pages) }
    }

    /// A never-used slot of `class`. The caller holds the maintenance lock.
    fn carve(&self, mt: &mut Maint, class: StackClass) -> Result<u32, AllocError> {
        let (chunk, next) = &mut mt.carve[class.index()];
        if *chunk == u32::MAX || *next as usize == SLOTS_PER_CHUNK {
            *chunk = self.reserve_chunk(class)?;
            *next = 0;
        }
        let slot = *chunk * SLOTS_PER_CHUNK as u32 + *next;
        *next += 1;
        self.classes[class.index()].carved.fetch_add(1, Ordering::Relaxed);
        Ok(slot)
    }

    /// How many more `mprotect` guards the mapping budget allows (each
    /// splits a mapping into up to two more). Checked at every growth, so
    /// that other runtimes' growth and everything else the process maps
    /// count too.
    fn map_room(&self) -> Result<usize, AllocError> {
        let (Some(limit), Some(current)) = (os::max_map_count(), os::current_map_count()) else {
            return Ok(BATCH);
        };
        let room = limit.saturating_sub(current + MAP_MARGIN) / 2;
        if room == 0 {
            return Err(AllocError::Os(io::Error::other(format!(
                "vm.max_map_count ({limit}) reached: this kernel lacks guard markers (Linux 6.13+), so each \
                 GVThread stack costs two memory mappings and the process already has {current}; raise it \
                 (sysctl -w vm.max_map_count={}) or keep fewer GVThreads alive",
                limit * 2
            ))));
        }
        Ok(room)
    }

    /// One scavenger pass, keeping `retain[class]` guarded free slots of
    /// each class warm; returns whether free memory is left to look at later
    /// (slots not idle long enough yet, retained, or the budget ran out).
    fn scavenge_pass(&self, now_ms: u32, retain: [usize; NUM_CLASSES]) -> bool {
        let idle_ms = IDLE_BEFORE_SCAVENGE.as_millis() as u32;
        let is_idle = |stamp: u32| now_ms.wrapping_sub(stamp) >= idle_ms;
        // Guarded free slots per class, beyond what is retained: what this
        // pass may give back.
        let mut allowed = [0usize; NUM_CLASSES];
        for c in self.table.reserved() {
            let p = c.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: chunks live as long as the pool.
                let chunk = unsafe { &*p };
                let n = chunk.metas().iter().filter(|m| m.load(Ordering::Relaxed) & KIND == FREE).count();
                allowed[chunk.class.index()] += n;
            }
        }
        let any_free = allowed.iter().any(|&a| a > 0);
        for (a, r) in allowed.iter_mut().zip(retain) {
            *a = a.saturating_sub(r);
        }
        if allowed.iter().all(|&a| a == 0) {
            // All retained: nothing may go now, so skip the scan below (a
            // million parked GVThreads beside their prepared slots would
            // have it read every slot's state every pass). Look again while
            // free slots are left, once the window moves on.
            return any_free;
        }
        let mut calls = 0;
        let mut left = false;
        for (index, c) in self.table.reserved().iter().enumerate() {
            let p = c.load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: chunks live as long as the pool.
            let chunk = unsafe { &*p };
            let mut in_use = false;
            let mut guarded_free = 0usize;
            let mut undiscarded = false;
            let mut young = false;
            for k in 0..SLOTS_PER_CHUNK {
                let m = chunk.meta_at(k).load(Ordering::Acquire);
                match m & KIND {
                    IN_USE | CLAIMED => in_use = true,
                    FREE => {
                        guarded_free += 1;
                        if m & DISCARDED == 0 {
                            undiscarded = true;
                            if !is_idle(chunk.freed_at(k).load(Ordering::Relaxed)) {
                                young = true;
                            }
                        }
                    }
                    _ => {}
                }
            }
            if guarded_free == 0 {
                continue;
            }
            if young {
                left = true;
            }
            let allowed = &mut allowed[chunk.class.index()];
            if *allowed == 0 {
                // Retained warm for now; the window moves on.
                left |= undiscarded || !in_use;
                continue;
            }
            if calls >= PASS_SYSCALLS {
                left |= undiscarded || !in_use;
                continue;
            }
            let first = (index * SLOTS_PER_CHUNK) as u32;
            if !in_use && !young && *allowed >= guarded_free {
                calls += 1;
                if self.remap_chunk(chunk, first) {
                    *allowed -= guarded_free;
                } else {
                    left = true;
                }
            } else if !in_use && !young {
                // Only part of it may go: later, when the window moves on.
                left = true;
            } else if undiscarded {
                // Young slots were counted in `left` above. A chunk with live
                // slots keeps its page tables until it empties; the release
                // of its last live slot re-arms the scavenger.
                calls += self.discard_runs(chunk, first, &is_idle, PASS_SYSCALLS - calls, allowed);
                if calls >= PASS_SYSCALLS {
                    left = true;
                }
            }
        }
        left
    }

    /// Claims slot `k` of `chunk` if it is `FREE` (and `want` agrees).
    fn claim(chunk: &Chunk, k: usize, want: impl Fn(u8) -> bool) -> Option<u8> {
        let meta = chunk.meta_at(k);
        let cur = meta.load(Ordering::Acquire);
        if cur & KIND != FREE || !want(cur) {
            return None;
        }
        meta.compare_exchange(cur, CLAIMED, Ordering::AcqRel, Ordering::Acquire).ok().map(|_| cur)
    }

    /// Ends a claim: the slot becomes `to`; if a spawner popped it meanwhile,
    /// it goes back on its free stack.
    fn unclaim(&self, chunk: &Chunk, slot: u32, to: u8) {
        let k = slot as usize % SLOTS_PER_CHUNK;
        let meta = chunk.meta_at(k);
        if meta.compare_exchange(CLAIMED, to, Ordering::AcqRel, Ordering::Acquire).is_err() {
            debug_assert_eq!(meta.load(Ordering::Relaxed), CLAIMED | ORPHAN);
            meta.store(to, Ordering::Release);
            self.classes[chunk.class.index()].free.push(slot, chunk.next_at(k));
        }
    }

    /// Gives back pages and page tables of a chunk none of whose slots is in
    /// use. Returns false if a spawner took a slot meanwhile.
    fn remap_chunk(&self, chunk: &Chunk, first: u32) -> bool {
        let mut claimed = [0u8; SLOTS_PER_CHUNK];
        let mut ok = true;
        for (k, prev) in claimed.iter_mut().enumerate() {
            match chunk.meta_at(k).load(Ordering::Acquire) & KIND {
                FREE => match Self::claim(chunk, k, |_| true) {
                    Some(p) => *prev = p,
                    None => {
                        ok = false;
                        break;
                    }
                },
                // No guard, no pages worth keeping; only the maintenance
                // lock (held) gives them a guard again.
                UNGUARDED | UNPREPARED => {}
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        // SAFETY: every slot of the chunk is free and either claimed by us
        // (spawners skip claimed slots) or unguarded/unprepared (only
        // maintenance, which we are, uses those): nothing lives in it.
        let remapped = ok && unsafe { os::remap_fresh(chunk.base, chunk.bytes()) }.is_ok();
        for (k, &prev) in claimed.iter().enumerate() {
            if prev != 0 {
                let to = if remapped { UNGUARDED } else { prev };
                self.unclaim(chunk, first + k as u32, to);
            }
        }
        remapped
    }

    /// `madvise(MADV_DONTNEED)` over runs of idle, undiscarded free slots of
    /// `chunk`, at most `max_calls` calls; returns the calls made.
    fn discard_runs(
        &self,
        chunk: &Chunk,
        first: u32,
        is_idle: &impl Fn(u32) -> bool,
        max_calls: usize,
        allowed: &mut usize,
    ) -> usize {
        let mut calls = 0;
        let mut k = 0;
        while k < SLOTS_PER_CHUNK && calls < max_calls && *allowed > 0 {
            let eligible = |m: u8| m & DISCARDED == 0 && is_idle(chunk.freed_at(k).load(Ordering::Relaxed));
            if Self::claim(chunk, k, eligible).is_none() {
                k += 1;
                continue;
            }
            let start = k;
            k += 1;
            *allowed -= 1;
            while k < SLOTS_PER_CHUNK && *allowed > 0 {
                let kk = k;
                let eligible = |m: u8| m & DISCARDED == 0 && is_idle(chunk.freed_at(kk).load(Ordering::Relaxed));
                if Self::claim(chunk, k, eligible).is_none() {
                    break;
                }
                k += 1;
                *allowed -= 1;
            }
            // SAFETY: slots `start..k` are free and claimed by us; the range
            // skips the first slot's guard page (the inner guards are markers,
            // which survive, or PROT_NONE pages, which hold nothing).
            unsafe {
                os::discard(chunk.slot_base(start).add(GUARD_SIZE), (k - start) * chunk.slot_size - GUARD_SIZE);
            }
            calls += 1;
            for j in start..k {
                self.unclaim(chunk, first + j as u32, FREE | DISCARDED);
            }
        }
        calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::os::probe_guard_scheme;

    fn pool() -> SlotPool {
        SlotPool::new(1024, probe_guard_scheme(), StackClass::DEFAULT).expect("pool")
    }

    fn take(p: &SlotPool, class: StackClass) -> u32 {
        p.allocate(class).expect("slot").slot
    }

    #[test]
    fn prepared_ahead_and_reused_lifo() {
        let p = pool();
        assert!(p.classes[StackClass::DEFAULT.index()].free.len() >= SlotPool::WANT_MIN);
        let a = take(&p, StackClass::DEFAULT);
        p.release(a);
        assert_eq!(take(&p, StackClass::DEFAULT), a, "the warm slot comes back first");
        // SAFETY: the slot is ours; its stack is writable.
        unsafe { p.top(a).sub(8).write(7) };
    }

    #[test]
    fn classes_do_not_mix() {
        let p = pool();
        let small = StackClass::for_size(256 << 10).unwrap();
        let s = take(&p, small);
        let d = take(&p, StackClass::DEFAULT);
        assert_eq!(p.class_of(s), small);
        assert_eq!(p.class_of(d), StackClass::DEFAULT);
        assert_eq!(p.top(s) as usize - p.base(s) as usize, 256 << 10);
        p.release(s);
        assert_ne!(take(&p, StackClass::DEFAULT), s);
    }

    #[test]
    fn failed_guard_keeps_the_slot() {
        // Issue 10 item 8: a slot whose guard cannot be installed must not be
        // lost. Empty the prepared stack, fail the next preparation, then
        // check every slot still comes back exactly once.
        let p = pool();
        let class = StackClass::for_size(64 << 10).unwrap();
        let first = take(&p, class);
        let cp = &p.classes[class.index()];
        let mut held = vec![first];
        while cp.free.len() > 0 {
            held.push(take(&p, class));
        }
        p.fail_guards.store(1, Ordering::Relaxed);
        {
            let mut mt = p.maint.lock().unwrap();
            assert!(p.prepare::<8>(&mut mt, class, 8).is_err(), "the injected failure is reported");
        }
        assert_eq!(cp.unprepared.len(), 8, "slots without guards wait on the unprepared stack");
        let mut seen = std::collections::HashSet::new();
        for s in &held {
            assert!(seen.insert(*s));
        }
        for _ in 0..16 {
            let s = take(&p, class);
            assert!(seen.insert(s), "slot {s} handed out twice");
        }
    }

    /// Guarded free slots of `class` in the whole pool.
    fn guarded_free(p: &SlotPool, class: StackClass) -> usize {
        let mut n = 0;
        for c in p.table.reserved() {
            let ptr = c.load(Ordering::Acquire);
            if ptr.is_null() {
                continue;
            }
            // SAFETY: chunks live as long as the pool.
            let chunk = unsafe { &*ptr };
            if chunk.class == class {
                n += chunk.metas().iter().filter(|m| m.load(Ordering::Relaxed) == FREE).count();
            }
        }
        n
    }

    #[test]
    fn a_margin_over_the_peak_stays_warm() {
        let p = pool();
        let class = StackClass::for_size(16 << 10).unwrap();
        let slots: Vec<u32> = (0..600).map(|_| take(&p, class)).collect();
        for &s in &slots {
            p.release(s);
        }
        let long_ago = p.age().as_millis() as u32 + IDLE_BEFORE_SCAVENGE.as_millis() as u32 + 10;
        let total = guarded_free(&p, class);
        // A peak of four fifths of them: the margin keeps all of them warm.
        let peak = total * 4 / 5 + 1;
        let mut retain = [0; NUM_CLASSES];
        retain[class.index()] = retained_free(peak, 0);
        assert!(retain[class.index()] >= total && peak < total);
        assert!(p.scavenge_pass(long_ago, retain), "retained free slots keep the scavenger looking");
        assert_eq!(guarded_free(&p, class), total, "nothing given back within the margin");
        // A peak of 200 keeps 250 warm (less what is in use): the rest goes.
        retain[class.index()] = retained_free(200, 0);
        p.scavenge_pass(long_ago, retain);
        let warm = guarded_free(&p, class);
        assert!((250..total).contains(&warm), "kept {warm} of {total}");
        assert_eq!(retained_free(200, 240), 10, "less what is in use");
    }

    /// A prepared slot's first page (where the spawn writes the header and
    /// the first frame) is already resident: the spawn does not fault.
    #[test]
    fn prepared_slots_come_with_their_first_page_resident() {
        let p = pool();
        for _ in 0..4 {
            let s = take(&p, StackClass::DEFAULT);
            let page = ((p.top(s) as usize - 1) & !(crate::memory::PAGE_SIZE - 1)) as *mut libc::c_void;
            let mut resident = [0u8; 1];
            // SAFETY: `page` is the top page of slot `s`'s reservation (mapped);
            // mincore only reads the page tables and writes `resident`.
            let r = unsafe { libc::mincore(page, crate::memory::PAGE_SIZE, resident.as_mut_ptr()) };
            assert_eq!(r, 0, "mincore: {}", io::Error::last_os_error());
            assert_eq!(resident[0] & 1, 1, "slot {s}: its first page is not resident");
        }
    }

    /// Slots a preparer picked (under the lock) and is still guarding and
    /// faulting in (without it) keep their chunk from being remapped, which
    /// would take their fresh guards away; published, they are free.
    #[test]
    fn slots_being_prepared_keep_their_chunk_from_being_remapped() {
        let p = pool();
        let class = StackClass::for_size(16 << 10).unwrap();
        let slots: Vec<u32> = (0..100).map(|_| take(&p, class)).collect();
        for &s in &slots {
            p.release(s);
        }
        let mut ids = [0u32; 8];
        let (n, err) = {
            let mut mt = p.maint.lock().unwrap();
            p.pick(&mut mt, class, 8, &mut ids).expect("picked")
        };
        assert!(n == 8 && err.is_none());
        let chunk = ids[0] as usize / SLOTS_PER_CHUNK;
        assert!(slots.iter().any(|&s| s as usize / SLOTS_PER_CHUNK == chunk), "picked in the chunk of the freed slots");
        // Everything free in the chunk is idle: without the picked slots it
        // would be remapped whole.
        let long_ago = p.age().as_millis() as u32 + IDLE_BEFORE_SCAVENGE.as_millis() as u32 + 10;
        p.scavenge_pass(long_ago, [0; NUM_CLASSES]);
        for &s in slots.iter().filter(|&&s| s as usize / SLOTS_PER_CHUNK == chunk) {
            assert_ne!(
                p.meta(s).load(Ordering::Relaxed),
                UNGUARDED,
                "slot {s}: its chunk was remapped under a preparer"
            );
        }
        assert_eq!(p.ready_picked(class, &ids[..n], None).expect("ready"), 8);
        for &s in &ids {
            assert_eq!(p.meta(s).load(Ordering::Relaxed), FREE, "slot {s} is published free");
        }
    }

    /// A depot nobody put into or took from for a whole
    /// `IDLE_BEFORE_SCAVENGE` goes back to the free stack; one in use stays.
    #[test]
    fn housekeeping_empties_a_depot_nobody_uses() {
        let p = pool();
        let slots: Vec<u32> = (0..20).map(|_| take(&p, StackClass::DEFAULT)).collect();
        assert_eq!(p.depot.put(&slots), 20);
        // Moves the last look a whole period back, as if that much time passed.
        let period_later = |p: &SlotPool| {
            let back = IDLE_BEFORE_SCAVENGE + Duration::from_millis(1);
            p.maint.lock().unwrap().depot_look = Instant::now().checked_sub(back).expect("uptime");
        };
        period_later(&p);
        let again = p.housekeep();
        assert_eq!(p.depot.len(), 20, "used since the last look: kept");
        assert!(again.is_some_and(|d| d <= IDLE_BEFORE_SCAVENGE), "housekeeping comes back for it");
        period_later(&p);
        p.housekeep();
        assert_eq!(p.depot.len(), 0, "untouched for a whole period: drained");
        for &s in &slots {
            assert_eq!(p.meta(s).load(Ordering::Relaxed) & KIND, FREE, "slot {s} is back in the pool");
        }
    }

    #[test]
    fn scavenger_remaps_idle_chunks_and_guards_come_back() {
        let p = pool();
        let class = StackClass::for_size(16 << 10).unwrap();
        let slots: Vec<u32> = (0..300).map(|_| take(&p, class)).collect();
        for &s in &slots {
            // SAFETY: our slots; touch the top page.
            unsafe { p.top(s).sub(64).write(1) };
        }
        for &s in &slots {
            p.release(s);
        }
        // Pretend the slots were freed long ago.
        let long_ago = p.age().as_millis() as u32 + IDLE_BEFORE_SCAVENGE.as_millis() as u32 + 10;
        let now = long_ago;
        p.scavenge_pass(now, [0; NUM_CLASSES]);
        for &s in &slots {
            let m = p.meta(s).load(Ordering::Relaxed);
            assert!(m == UNGUARDED || m == FREE | DISCARDED, "slot {s} meta {m:#x}");
        }
        // Reuse: unguarded slots go through the preparer, never handed out
        // without a guard.
        for _ in 0..300 {
            let s = take(&p, class);
            assert_eq!(p.meta(s).load(Ordering::Relaxed), IN_USE);
            // SAFETY: our slot; fresh zero page after the remap.
            unsafe {
                let top = p.top(s).sub(64);
                assert_eq!(top.read(), 0, "pages were given back");
                top.write(2);
            }
        }
    }
}
