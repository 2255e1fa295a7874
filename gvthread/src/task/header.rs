//! The header at the top of every slot: what a GVThread owns besides its stack.

use std::cell::{Cell, UnsafeCell};
use std::mem::size_of;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::local::LocalMap;
use crate::arch::Context;
use crate::sched::machine::Machine;
use crate::sync::cancel::CancellationToken;

/// Per-GVThread data kept in the slot itself, right above the stack, so an
/// idle GVThread's header and first frames share one page.
///
/// Written by the spawner before the GVThread is published (queued), then
/// owned by the GVThread (and by the scheduler for `ctx` while it is not
/// running). Cross-thread state lives in the pool's state words instead.
#[repr(C, align(64))]
pub(crate) struct Header {
    /// Saved context while not running.
    pub(crate) ctx: UnsafeCell<Context>,
    /// The GVThread's cancellation token (taken at exit).
    pub(crate) token: UnsafeCell<Option<CancellationToken>>,
    /// GVThread-local storage (dropped at exit).
    pub(crate) locals: UnsafeCell<LocalMap>,
    /// While preempted by signal: the machine whose handler holds this
    /// GVThread's registers (only that machine may resume it).
    pub(crate) bound: AtomicPtr<Machine>,
    /// Depth of `no_preempt` sections (read by the signal handler on the
    /// same OS thread).
    pub(crate) no_preempt: Cell<u32>,
    /// What the GVThread waits on, for `Handle::dump` (written by the
    /// GVThread itself in `sched::park`, read by the dump).
    pub(crate) wait: WaitInfo,
    /// The name given with [`Builder::name`](crate::Builder::name) (taken at
    /// exit). Read by the overflow handler through [`name_at_top`].
    pub(crate) name: UnsafeCell<Option<Box<str>>>,
}

/// Where and since when a GVThread waits: three relaxed words, written by
/// the GVThread itself (plain stores, no allocation, no lock) and read by
/// `Handle::dump`, which treats them as a hint (it validates the state word
/// separately).
pub(crate) struct WaitInfo {
    /// The `park` call site (`&'static Location`), or null when not parking.
    site: AtomicPtr<Location<'static>>,
    /// Coarse monotonic time (ns) of the spawn or of the last park.
    since: AtomicU64,
    /// Coarse monotonic deadline (ns) of a timed park, or 0.
    deadline: AtomicU64,
}

impl WaitInfo {
    /// A GVThread spawned at `now` (`Shared::mono_coarse_now`: no clock
    /// read on the spawn path).
    #[inline]
    pub(crate) fn new(now: u64) -> WaitInfo {
        WaitInfo { site: AtomicPtr::new(std::ptr::null_mut()), since: AtomicU64::new(now), deadline: AtomicU64::new(0) }
    }

    /// The GVThread is about to park at `site`, for at most `timeout`; `now`
    /// is the coarse clock in the domain of `util::clock::coarse_nanos`
    /// (`Shared::mono_coarse_now`: no clock read on the park path).
    #[inline]
    pub(crate) fn parking(&self, site: &'static Location<'static>, timeout: Option<std::time::Duration>, now: u64) {
        let deadline = timeout.map_or(0, |t| now.saturating_add(t.as_nanos() as u64).max(1));
        self.since.store(now, Ordering::Relaxed);
        self.deadline.store(deadline, Ordering::Relaxed);
        self.site.store(site as *const Location<'static> as *mut Location<'static>, Ordering::Relaxed);
    }

    /// The GVThread returned from a park. Only clears the site: reading the
    /// clock here too would double the cost on the park/wake path, and how
    /// long a GVThread has been running or runnable matters less than how
    /// long it has waited (`since` then dates the last park).
    #[inline]
    pub(crate) fn resumed(&self) {
        self.site.store(std::ptr::null_mut(), Ordering::Relaxed);
    }

    /// `(site, since, deadline)` as last written.
    pub(crate) fn read(&self) -> (Option<&'static Location<'static>>, u64, u64) {
        let site = self.site.load(Ordering::Relaxed);
        // SAFETY: only ever null or a `&'static Location` (see `parking`).
        let site = unsafe { site.cast_const().as_ref() };
        (site, self.since.load(Ordering::Relaxed), self.deadline.load(Ordering::Relaxed))
    }
}

/// The name of the GVThread whose slot ends at `top`, for the overflow
/// report. Async-signal-safe: plain reads, no allocation.
///
/// # Safety
/// `top` is the top of a slot in use (its header was written at spawn).
pub(crate) unsafe fn name_at_top(top: *const u8) -> Option<&'static [u8]> {
    let header = top.wrapping_sub(HEADER_SIZE).cast::<Header>();
    // SAFETY: by the caller's contract the header is initialised; the name
    // is only replaced by its own GVThread, which is the one overflowing.
    unsafe { (*(*header).name.get()).as_deref().map(|s| &*(s.as_bytes() as *const [u8])) }
}

/// Bytes reserved for the header at the top of a slot.
pub(crate) const HEADER_SIZE: usize = size_of::<Header>().next_multiple_of(64);

const _: () = assert!(HEADER_SIZE <= 256, "keep the header small: it shares a page with the first frames");
