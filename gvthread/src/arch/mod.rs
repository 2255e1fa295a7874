//! Architecture-specific context switching.
//!
//! The contract every architecture provides:
//!
//! * [`Context`]: the saved state of a suspended execution context. On every
//!   architecture it is a single saved stack pointer; everything else that must
//!   survive a voluntary switch is pushed onto the suspended stack itself.
//! * [`init_stack`]: prepares a fresh stack so that the first [`switch`] into it
//!   calls `entry(arg)` on that stack with the ABI-required alignment.
//! * [`switch`]: saves the callee-saved state of the running context into `from`
//!   and resumes `to`. It returns when somebody switches back to `from`.
//! * [`STACK_ALIGNMENT`]: the alignment of the initial stack pointer.
//! * [`Interrupted`]: what the preemption handler needs to know about the
//!   code a signal interrupted (its program counter, and whether it was
//!   blocked in a system call), read from the kernel's `ucontext_t`, and
//!   [`Syscall`], the call it was blocked in.
//! * `SuspendedRegs` and `suspended_regs`: the registers a suspended context
//!   resumes with, for the stack unwinder of `Runtime::dump`.
//! * [`prefetch`]: asks the CPU to start loading a cache line (and its
//!   address translation) that is about to be used; a hint that never faults.
//!
//! Supported targets: Linux on x86_64 (`x86_64.rs`) and on aarch64
//! (`aarch64.rs`). Any other target fails to compile with an error naming
//! them.
//!
//! Voluntary switches only need the callee-saved registers: the caller of
//! `switch` already treats every caller-saved register as clobbered, as for any
//! function call. Forced preemption never uses `switch` (see `preempt`).

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod x86_64;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use x86_64::{Context, Interrupted, STACK_ALIGNMENT, Syscall, init_stack, prefetch, switch};
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use x86_64::{SuspendedRegs, suspended_regs};

#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
mod aarch64;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub(crate) use aarch64::{Context, Interrupted, STACK_ALIGNMENT, Syscall, init_stack, prefetch, switch};
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
pub(crate) use aarch64::{SuspendedRegs, strip_return_address, suspended_regs};

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
compile_error!(
    "gvthread supports Linux on x86_64 (x86_64-unknown-linux-gnu) and on aarch64 \
     (aarch64-unknown-linux-gnu) only: context switching, the preemption signal \
     handler and the guard pages are written for those targets"
);

/// The signature of a GVThread entry point: called once on the fresh stack with
/// the argument given to [`init_stack`]. It must never return (it switches away
/// for the last time instead) and must never unwind.
///
/// It uses the platform's C calling convention (System V on x86_64, AAPCS64
/// on aarch64): the trampoline of each `arch` module calls it that way.
pub(crate) type EntryFn = unsafe extern "C" fn(arg: *mut u8) -> !;
