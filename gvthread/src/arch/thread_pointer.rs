//! The thread pointer: the register that locates an OS thread's thread-local
//! storage (`fs` base on x86_64, `TPIDR_EL0` on aarch64), and system calls
//! that leave `errno` alone.
//!
//! A worker role's GVThreads all run with one thread pointer: that of the
//! role's *identity thread* (see `sched::identity`), whichever machine runs
//! them. Code compiled by LLVM may keep a thread-local's address across calls,
//! and std registers a thread-local's destructor with the thread that first
//! touches it; both stay consistent only if every access, fresh or cached,
//! resolves against the same thread-local block. Machines set the pointer when
//! they take a role and restore their own when they give it up.
//!
//! Nothing here touches thread-local storage itself, and everything is
//! async-signal-safe (a register write, or a raw system call).

use std::sync::atomic::{AtomicU8, Ordering};

/// Whether the CPU and kernel let user code write the thread pointer
/// directly (x86_64 `wrfsbase`; always on aarch64): 0 not probed yet, 1 yes,
/// 2 no (use `arch_prctl`).
static DIRECT_WRITE: AtomicU8 = AtomicU8::new(0);

/// Probes how the thread pointer can be written. Called once per runtime,
/// before any machine runs (the probe itself is not async-signal-safe in
/// theory: `getauxval` is, in practice, a read of static data).
pub(crate) fn init() {
    if DIRECT_WRITE.load(Ordering::Relaxed) != 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    let direct = {
        /// `HWCAP2_FSGSBASE`: the kernel enabled `rdfsbase`/`wrfsbase` for user code.
        const HWCAP2_FSGSBASE: libc::c_ulong = 1 << 1;
        // SAFETY: getauxval has no preconditions.
        let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
        hwcap2 & HWCAP2_FSGSBASE != 0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let direct = true;
    DIRECT_WRITE.store(if direct { 1 } else { 2 }, Ordering::Relaxed);
}

/// The calling OS thread's current thread pointer.
#[inline(never)]
pub(crate) fn get() -> usize {
    let tp: usize;
    // SAFETY: on x86_64 Linux the word at `fs:0` is the thread control
    // block's pointer to itself (the ELF TLS ABI), i.e. the `fs` base.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags));
    }
    // SAFETY: reading TPIDR_EL0 is always allowed at EL0.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nomem, nostack, preserves_flags));
    }
    tp
}

/// Makes `tp` the calling OS thread's thread pointer: from here on its
/// thread-local accesses resolve in the block `tp` locates.
///
/// # Safety
/// `tp` must be the thread pointer of a live thread whose thread-local block
/// no other thread uses while the caller does (see the module docs), and the
/// caller must not use a thread-local address computed before the call.
#[inline(never)]
pub(crate) unsafe fn set(tp: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if DIRECT_WRITE.load(Ordering::Relaxed) == 1 {
            // SAFETY: `init` found `wrfsbase` enabled; the caller vouches for `tp`.
            unsafe { core::arch::asm!("wrfsbase {}", in(reg) tp, options(nostack, preserves_flags)) };
        } else {
            /// `ARCH_SET_FS` (asm/prctl.h).
            const ARCH_SET_FS: usize = 0x1002;
            // SAFETY: arch_prctl(ARCH_SET_FS) only sets this thread's `fs`
            // base; the caller vouches for `tp`.
            unsafe { raw_syscall(libc::SYS_arch_prctl as usize, [ARCH_SET_FS, tp, 0, 0]) };
        }
    }
    // SAFETY: writing TPIDR_EL0 is always allowed at EL0; the caller vouches
    // for `tp`.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("msr tpidr_el0, {}", in(reg) tp, options(nostack, preserves_flags));
    }
}

/// A system call with up to four arguments that never writes `errno`
/// (libc's `syscall` does, and `errno` lives in thread-local storage).
/// Returns the kernel's result (`-errno` on failure).
///
/// # Safety
/// As for the system call `nr` with these arguments.
#[inline]
pub(crate) unsafe fn raw_syscall(nr: usize, args: [usize; 4]) -> isize {
    let ret: isize;
    // SAFETY: the Linux x86_64 system call convention: number in rax,
    // arguments in rdi, rsi, rdx, r10; rcx and r11 are clobbered.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack, preserves_flags),
        );
    }
    // SAFETY: the Linux aarch64 convention: number in x8, arguments in x0-x3,
    // result in x0.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!(
            "svc #0",
            in("x8") nr,
            inlateout("x0") args[0] as isize => ret,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            options(nostack, preserves_flags),
        );
    }
    ret
}

/// Blocks while `*word == expected` (or until woken), without touching
/// `errno` (see [`raw_syscall`]).
pub(crate) fn futex_wait(word: &std::sync::atomic::AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT only reads `word`, a valid aligned u32, for the call.
    unsafe {
        raw_syscall(
            libc::SYS_futex as usize,
            [word.as_ptr() as usize, (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as usize, expected as usize, 0],
        )
    };
}

/// Wakes one thread blocked on `word`, without touching `errno`.
pub(crate) fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE does not access memory; `word` is a valid address.
    unsafe {
        raw_syscall(
            libc::SYS_futex as usize,
            [word.as_ptr() as usize, (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as usize, 1, 0],
        )
    };
}

/// The kernel's id of the calling thread (`gettid`), without touching `errno`.
pub(crate) fn tid() -> i32 {
    // SAFETY: gettid has no arguments and no preconditions.
    unsafe { raw_syscall(libc::SYS_gettid as usize, [0; 4]) as i32 }
}
