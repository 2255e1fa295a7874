//! The header at the top of every slot: what a GVThread owns besides its stack.

use std::cell::{Cell, UnsafeCell};
use std::mem::size_of;
use std::sync::atomic::AtomicPtr;

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
    /// The name given with [`Builder::name`](crate::Builder::name) (taken at
    /// exit). Read by the overflow handler through [`name_at_top`].
    pub(crate) name: UnsafeCell<Option<Box<str>>>,
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
