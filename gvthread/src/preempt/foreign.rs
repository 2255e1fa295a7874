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
//! The exception is a thread blocked in a system call there: waiting in the
//! kernel (on a lock, a sleep, I/O) it usually holds no lock of the library
//! that it would release by running on, and freezing it is how a role
//! escapes a thread blocked on a lock that a frozen GVThread holds. Except
//! the memory-management calls ([`MEMORY_CALLS`]): `malloc` grows, shrinks
//! and trims its arenas with them *holding the arena lock* (glibc grows a
//! thread arena one `mprotect` at a time), and thread creation maps stacks
//! under the stack cache lock. A GVThread frozen there kept an arena locked
//! while the role's next thread, inside the scheduler (a runtime section,
//! never frozen), freed a queue block into that arena and waited for the
//! lock: the role stopped for good (`tokio_timers_beside_hogs`, once, in
//! CI). Also, a signal that lands just before a `syscall` instruction looks
//! like one in a call about to restart (`arch::Interrupted`), so "in a
//! system call" includes "about to make one".
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

use crate::arch::Interrupted;
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

/// System calls the C library makes while holding one of its locks (see the
/// module docs).
const MEMORY_CALLS: [libc::c_long; 6] =
    [libc::SYS_mmap, libc::SYS_munmap, libc::SYS_mprotect, libc::SYS_madvise, libc::SYS_brk, libc::SYS_mremap];

/// Whether code interrupted at `at` may hold a lock of the objects above:
/// it runs in their code, or is in (or about to make) a memory-management
/// system call from there. Async-signal-safe.
pub(crate) fn may_hold_lock(at: &Interrupted) -> bool {
    if !contains(at.pc) {
        return false;
    }
    if !at.in_syscall {
        return true;
    }
    // A call whose number is unknown returned `EINTR`, which these never do.
    at.syscall().is_some_and(|call| MEMORY_CALLS.contains(&call.nr))
}

/// Whether `pc` lies in the code of one of the objects above.
/// Async-signal-safe.
fn contains(pc: usize) -> bool {
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

    /// The address of the first `syscall` instruction in the C library
    /// function at `f` (glibc's wrappers are short).
    #[cfg(target_arch = "x86_64")]
    fn syscall_instruction_in(f: usize) -> usize {
        (f..f + 256)
            // SAFETY: reads bytes of mapped, readable code (a libc function
            // and the bytes right after it, within its code segment).
            .find(|&p| unsafe { (p as *const [u8; 2]).read_unaligned() } == [0x0f, 0x05])
            .expect("no syscall instruction near the wrapper's start")
    }

    /// A thread stopped at a `syscall` instruction in the C library's
    /// `mprotect` (in the call, or about to make it) may hold an arena lock;
    /// one at the C library's generic `syscall` making a futex call holds
    /// none of its locks (a lock waiter, which the hand-off may freeze).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn memory_calls_in_the_c_library_may_hold_its_locks() {
        super::init();
        let at = |pc: usize, nr: libc::c_long| {
            // SAFETY: an all-zero ucontext is a valid value; only the two
            // registers below are read.
            let mut uc: libc::ucontext_t = unsafe { std::mem::zeroed() };
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] = pc as i64;
            uc.uc_mcontext.gregs[libc::REG_RAX as usize] = nr;
            // SAFETY: `uc` lives until the value is dropped below, and its
            // `rip` points into mapped code.
            let at = unsafe { crate::arch::Interrupted::from_ucontext((&mut uc as *mut libc::ucontext_t).cast()) };
            assert!(at.in_syscall, "a pc at a syscall instruction reads as in a call");
            super::may_hold_lock(&at)
        };
        let mprotect = syscall_instruction_in(libc::mprotect as *const () as usize);
        assert!(at(mprotect, libc::SYS_mprotect), "mprotect in the C library");
        let generic = syscall_instruction_in(libc::syscall as *const () as usize);
        assert!(!at(generic, libc::SYS_futex), "a futex wait in the C library");
    }
}
