//! Thin wrappers over the memory system calls the slot pool needs.

use std::io;
use std::ptr;

/// `MADV_GUARD_INSTALL` (Linux 6.13+): install guard markers in page tables.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// How guard pages are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardScheme {
    /// Guard markers in the page tables: no extra kernel mappings.
    Marker,
    /// `mprotect(PROT_NONE)`: two kernel mappings per slot.
    Mprotect,
}

/// Reserves `len` bytes of address space (readable and writable, no commit
/// charge, no physical memory until touched) whose start is `offset` bytes past
/// an `align` boundary.
pub(crate) fn reserve(len: usize, align: usize, offset: usize) -> io::Result<*mut u8> {
    let total = len + align;
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing cannot alias any existing Rust object.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let raw = raw as usize;
    let base = raw + ((offset + align - raw % align) % align);
    let head = base - raw;
    let tail = total - head - len;
    // SAFETY: both ranges lie inside the mapping just created and outside the
    // part we keep; nothing references them.
    unsafe {
        if head > 0 {
            libc::munmap(raw as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((base + len) as *mut libc::c_void, tail);
        }
        // Transparent huge pages would turn a one-page stack into 2 MiB.
        libc::madvise(base as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE);
    }
    Ok(base as *mut u8)
}

/// Replaces `[base, base + len)` (part of a reservation) with a fresh
/// mapping of the same kind: every page *and page table* of the range is
/// given back at once, and guard markers are gone (the caller reinstalls
/// them). `MADV_DONTNEED` frees pages but not page tables that still hold a
/// guard marker.
///
/// # Safety
/// No live object may be stored in the range.
pub(crate) unsafe fn remap_fresh(base: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: MAP_FIXED over a range we own and that holds nothing live.
    let p = unsafe {
        libc::mmap(
            base.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the range was just mapped by us.
    unsafe { libc::madvise(base.cast(), len, libc::MADV_NOHUGEPAGE) };
    Ok(())
}

/// Unmaps a range made by [`reserve`].
///
/// # Safety
/// Nothing may access the range afterwards.
pub(crate) unsafe fn unreserve(base: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe { libc::munmap(base.cast(), len) };
}

/// Gives the physical pages of a range back to the kernel; the range stays
/// mapped and reads as zeros afterwards. Guard markers survive.
///
/// # Safety
/// No live object may be stored in the range.
pub(crate) unsafe fn discard(base: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range holds nothing live.
    unsafe { libc::madvise(base.cast(), len, libc::MADV_DONTNEED) };
}

/// Makes `[page, page + len)` a guard: any access faults.
///
/// # Safety
/// The range must be inside a reservation and hold nothing live.
pub(crate) unsafe fn install_guard(scheme: GuardScheme, page: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is ours and unused.
    let rc = unsafe {
        match scheme {
            GuardScheme::Marker => libc::madvise(page.cast(), len, MADV_GUARD_INSTALL),
            GuardScheme::Mprotect => libc::mprotect(page.cast(), len, libc::PROT_NONE),
        }
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Picks the guard scheme this kernel supports, probing with a scratch mapping.
pub(crate) fn probe_guard_scheme() -> GuardScheme {
    let Ok(base) = reserve(2 * super::PAGE_SIZE, super::PAGE_SIZE, 0) else {
        return GuardScheme::Mprotect;
    };
    // SAFETY: `base` is a fresh two-page mapping owned here.
    let ok = unsafe { install_guard(GuardScheme::Marker, base, super::PAGE_SIZE).is_ok() };
    // SAFETY: as above; unmapped once, never used again.
    unsafe { unreserve(base, 2 * super::PAGE_SIZE) };
    if ok { GuardScheme::Marker } else { GuardScheme::Mprotect }
}

/// `vm.max_map_count`, if readable.
pub(crate) fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?.trim().parse().ok()
}

/// Number of kernel mappings this process holds now, if readable.
pub(crate) fn current_map_count() -> Option<usize> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    Some(maps.iter().filter(|&&b| b == b'\n').count())
}
