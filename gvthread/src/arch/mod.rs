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
//!   blocked in a system call), read from the kernel's `ucontext_t`.
//!
//! Voluntary switches only need the callee-saved registers: the caller of
//! `switch` already treats every caller-saved register as clobbered, as for any
//! function call. Forced preemption never uses `switch` (see `preempt`).

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{Context, Interrupted, STACK_ALIGNMENT, Syscall, init_stack, switch};
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{SuspendedRegs, suspended_regs};

#[cfg(not(target_arch = "x86_64"))]
compile_error!("gvthread currently supports x86_64 only (Linux); other architectures need an arch/ module");

/// The signature of a GVThread entry point: called once on the fresh stack with
/// the argument given to [`init_stack`]. It must never return (it switches away
/// for the last time instead) and must never unwind.
pub(crate) type EntryFn = unsafe extern "sysv64" fn(arg: *mut u8) -> !;
