//! Thin wrappers over the memory system calls the slot pool needs.

use std::io;
use std::ptr;

/// `MADV_GUARD_INSTALL` (Linux 6.13+): install guard markers in page tables.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// `MADV_GUARD_REMOVE` (Linux 6.13+): remove guard markers.
const MADV_GUARD_REMOVE: libc::c_int = 103;

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

/// Removes the guard markers of `[page, page + len)` (made by
/// [`install_guard`] with [`GuardScheme::Marker`]); the pages read as zeros
/// afterwards. An empty 2 MiB range can then lose its page-table page.
///
/// # Safety
/// The range must be inside a reservation, and nothing may rely on it
/// faulting until the guard is installed again.
pub(crate) unsafe fn remove_guard(page: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is ours.
    let rc = unsafe { libc::madvise(page.cast(), len, MADV_GUARD_REMOVE) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Installs one guard page at each address of `pages` (each inside a
/// reservation, holding nothing live). Guard markers go in with batched
/// `process_madvise(2)` calls (one system call per 512 pages) when the
/// kernel takes them, else one `madvise`/`mprotect` per page. On error,
/// returns how many pages (a prefix of `pages`) got their guard.
///
/// # Safety
/// As for [`install_guard`], for every page.
pub(crate) unsafe fn install_guards(scheme: GuardScheme, pages: &[*mut u8]) -> Result<(), (usize, io::Error)> {
    let mut done = 0;
    if scheme == GuardScheme::Marker && pages.len() > 1 {
        // SAFETY: forwarded contract.
        done = unsafe { process_madvise_guards(pages) };
    }
    for (i, &p) in pages.iter().enumerate().skip(done) {
        // SAFETY: forwarded contract.
        if let Err(e) = unsafe { install_guard(scheme, p, super::PAGE_SIZE) } {
            return Err((i, e));
        }
    }
    Ok(())
}

/// Guard markers for a prefix of `pages` through `process_madvise` on our
/// own process; returns the length of the prefix done (0 if the kernel
/// does not support it, and the caller falls back to `madvise`).
///
/// # Safety
/// As for [`install_guards`].
unsafe fn process_madvise_guards(pages: &[*mut u8]) -> usize {
    // SAFETY: pidfd_open on our own pid has no memory effects.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) } as libc::c_int;
    if pidfd < 0 {
        return 0;
    }
    let mut done = 0;
    let mut iov = [libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }; 512];
    while done < pages.len() {
        let n = (pages.len() - done).min(iov.len());
        for (v, &p) in iov.iter_mut().zip(&pages[done..done + n]) {
            *v = libc::iovec { iov_base: p.cast(), iov_len: super::PAGE_SIZE };
        }
        // SAFETY: the iovecs describe pages the caller owns; the call only
        // installs guard markers there.
        let r = unsafe { libc::syscall(libc::SYS_process_madvise, pidfd, iov.as_ptr(), n, MADV_GUARD_INSTALL, 0) };
        if r != (n * super::PAGE_SIZE) as libc::c_long {
            // Unsupported or partial: let the per-page path redo the rest
            // (installing a marker twice is harmless).
            break;
        }
        done += n;
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(pidfd) };
    done
}

/// Picks the guard scheme this kernel supports. The environment variable
/// `GVTHREAD_FORCE_MPROTECT_GUARDS=1` forces the `mprotect` fallback (for
/// testing it on new kernels).
///
/// Guard markers are used only once a probe has *proved* that they fault
/// (see [`markers_fault`]); a zero return from `madvise` is not enough.
/// Under qemu-user, for one, `madvise(MADV_GUARD_INSTALL)` returns 0 and
/// installs nothing (qemu drops most advice), and trusting it would run
/// every GVThread without a guard. The probe runs once per process.
pub(crate) fn probe_guard_scheme() -> GuardScheme {
    if std::env::var_os("GVTHREAD_FORCE_MPROTECT_GUARDS").is_some_and(|v| v == "1") {
        return GuardScheme::Mprotect;
    }
    static MARKERS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *MARKERS.get_or_init(markers_fault) { GuardScheme::Marker } else { GuardScheme::Mprotect }
}

/// Installs a guard marker on the first page of a scratch mapping and asks
/// the kernel whether each of the two pages faults: the marked one must, the
/// other must not (which also shows that the test can tell them apart).
/// Any failure along the way counts as "markers do not work".
fn markers_fault() -> bool {
    let Ok(base) = reserve(2 * super::PAGE_SIZE, super::PAGE_SIZE, 0) else {
        return false;
    };
    // SAFETY: `base` is a fresh two-page mapping owned here, holding nothing.
    let installed = unsafe { install_guard(GuardScheme::Marker, base, super::PAGE_SIZE).is_ok() };
    // SAFETY: `base + PAGE_SIZE` is the second page of the same mapping.
    let proved =
        installed && faults(base) == Some(true) && faults(unsafe { base.add(super::PAGE_SIZE) }) == Some(false);
    // SAFETY: as above; unmapped once, never used again.
    unsafe { unreserve(base, 2 * super::PAGE_SIZE) };
    proved
}

/// Whether reading the byte at `addr` faults, found without faulting:
/// `write(2)` of that byte into a pipe fails with `EFAULT` exactly when the
/// kernel cannot read it (a guard marker or `PROT_NONE`; under qemu-user,
/// whatever qemu's own page flags say, so the answer matches what the
/// emulated program would see). `None` if the pipe cannot be made.
fn faults(addr: *const u8) -> Option<bool> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return None;
    }
    // SAFETY: the kernel checks `addr` and fails with EFAULT rather than
    // fault; the pipe is empty, so one byte never blocks.
    let n = unsafe { libc::write(fds[1], addr.cast(), 1) };
    let err = std::io::Error::last_os_error().raw_os_error();
    // SAFETY: closing the descriptors opened above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    match n {
        1 => Some(false),
        _ if err == Some(libc::EFAULT) => Some(true),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::PAGE_SIZE;

    #[test]
    fn fault_test_tells_guards_from_memory() {
        let base = reserve(2 * PAGE_SIZE, PAGE_SIZE, 0).expect("reserve");
        // SAFETY: a fresh two-page mapping owned here; the second page is
        // written before anything reads it.
        let second = unsafe {
            install_guard(GuardScheme::Mprotect, base, PAGE_SIZE).expect("mprotect");
            let p = base.add(PAGE_SIZE);
            p.write(7);
            p
        };
        assert_eq!(faults(base), Some(true), "a PROT_NONE page faults");
        assert_eq!(faults(second), Some(false), "a mapped page does not");
        // SAFETY: unmapped once, not used again.
        unsafe { unreserve(base, 2 * PAGE_SIZE) };
    }

    #[test]
    fn probed_scheme_really_guards() {
        // Whatever the probe picked (markers on Linux 6.13+, mprotect on older
        // kernels and under qemu-user), a page guarded with it faults.
        let scheme = probe_guard_scheme();
        let base = reserve(PAGE_SIZE, PAGE_SIZE, 0).expect("reserve");
        // SAFETY: a fresh one-page mapping owned here, holding nothing.
        unsafe { install_guard(scheme, base, PAGE_SIZE).expect("guard") };
        assert_eq!(faults(base), Some(true), "{scheme:?} guard does not fault");
        // SAFETY: unmapped once, not used again.
        unsafe { unreserve(base, PAGE_SIZE) };
    }
}
