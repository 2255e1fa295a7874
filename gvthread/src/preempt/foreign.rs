//! Code the preemption handler never freezes: the C library, the dynamic
//! loader and the unwinder.
//!
//! These hold process-wide locks that every thread takes, the runtime's
//! threads included: a `malloc` arena lock (other threads free into the same
//! arena), the loader's lock (thread creation, `dlopen`, TLS setup), the
//! unwinder's object list. A GVThread frozen while holding one would stall
//! whoever needs it next, possibly the very thread that should resume it
//! (design-notes §2b). So when the interrupted program counter lies in one of
//! these objects' executable segments, the handler declines and the monitor
//! retries at its next tick (a wake-up preemption sooner: see `monitor`), as
//! Go retries at a non-safe point.
//!
//! The one exception is a thread blocked in a system call there: it holds no
//! lock of the library that it would release by running on (it is waiting in
//! the kernel), and freezing it is how a role escapes a thread blocked on a
//! lock that a frozen GVThread holds.
//!
//! The vDSO is not on the list: its clock reads take no lock (they retry on
//! a sequence counter), so freezing a thread inside one stalls nobody, and a
//! CPU hog that reads the clock in its loop (`while t.elapsed() < d`) spends
//! much of its time there; declining there made such hogs dodge most
//! signals.
//!
//! The ranges are read once, with `dl_iterate_phdr`, when the first runtime
//! installs the handler; the handler only reads them (atomics, no lock).
//! Libraries loaded later by `dlopen` are not covered (the C library and the
//! loader are always loaded at start-up).

use std::ffi::CStr;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

const MAX_RANGES: usize = 32;

#[allow(clippy::declare_interior_mutable_const)] // used only to initialise the array
const EMPTY: (AtomicUsize, AtomicUsize) = (AtomicUsize::new(0), AtomicUsize::new(0));
static RANGES: [(AtomicUsize, AtomicUsize); MAX_RANGES] = [EMPTY; MAX_RANGES];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static INIT: Once = Once::new();

/// Shared objects whose code is never frozen (matched against the start of
/// the file name).
const NAMES: [&[u8]; 6] = [b"libc.so", b"ld-linux", b"ld64.so", b"libgcc_s", b"libpthread", b"libdl"];

/// Reads the ranges (once per process).
pub(crate) fn init() {
    INIT.call_once(|| {
        // SAFETY: `collect` matches dl_iterate_phdr's callback signature and
        // only reads the structures it is given.
        unsafe { libc::dl_iterate_phdr(Some(collect), std::ptr::null_mut()) };
    });
}

/// Whether `pc` lies in the code of one of the objects above.
/// Async-signal-safe.
pub(crate) fn contains(pc: usize) -> bool {
    let n = COUNT.load(Ordering::Acquire);
    RANGES[..n].iter().any(|(s, e)| (s.load(Ordering::Relaxed)..e.load(Ordering::Relaxed)).contains(&pc))
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    _data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: dl_iterate_phdr passes a valid info structure for the duration
    // of the callback.
    let info = unsafe { &*info };
    if info.dlpi_name.is_null() {
        return 0;
    }
    // SAFETY: a non-null dlpi_name is a NUL-terminated string.
    let path = unsafe { CStr::from_ptr(info.dlpi_name) }.to_bytes();
    let file = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    if !NAMES.iter().any(|n| file.starts_with(n)) {
        return 0;
    }
    for i in 0..info.dlpi_phnum as usize {
        // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_X == 0 {
            continue;
        }
        let n = COUNT.load(Ordering::Relaxed);
        if n == MAX_RANGES {
            return 1;
        }
        let start = info.dlpi_addr as usize + ph.p_vaddr as usize;
        RANGES[n].0.store(start, Ordering::Relaxed);
        RANGES[n].1.store(start + ph.p_memsz as usize, Ordering::Relaxed);
        COUNT.store(n + 1, Ordering::Release);
    }
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn libc_code_is_foreign_and_ours_is_not() {
        super::init();
        assert!(super::contains(libc::malloc as *const () as usize), "malloc should lie in the C library's code");
        assert!(super::contains(libc::write as *const () as usize));
        assert!(!super::contains(libc_code_is_foreign_and_ours_is_not as *const () as usize));
    }
}
