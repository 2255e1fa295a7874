//! AArch64 (AAPCS64, Linux) context switch.
//!
//! # Stack layouts
//!
//! A *suspended* context's stack pointer points at a [`SwitchFrame`]:
//!
//! ```text
//!   higher addresses
//!   +------------------+  <- sp of the code that called `switch`
//!   | lr  (x30)        |  <- where `switch` returns to when resumed
//!   | fp  (x29)        |
//!   | x28 .. x19       |  10 words, x19 lowest
//!   | d15 .. d8        |   8 words, d8 lowest
//!   | FPSR             |
//!   | FPCR             |  <- Context::sp (16-byte aligned)
//!   +------------------+
//!   lower addresses
//! ```
//!
//! AArch64 has no `push`: `switch` makes the frame with one `sub sp` and
//! `stp` pairs, and the return address is simply the link register it was
//! called with (`bl` leaves it in `x30`); `ret` at the end jumps to the
//! restored `x30`.
//!
//! A *fresh* stack made by [`init_stack`] holds the same frame, with `lr`
//! pointing at [`trampoline`], `x19` = entry function, `x20` = its argument,
//! `fp` = 0 and the default floating-point state. Resuming it "returns" into
//! the trampoline with `sp` 16-byte aligned (AArch64 requires that of `sp`
//! at all times, not only at calls); the trampoline `blr`s the entry function,
//! which sees the stack exactly as after a normal call:
//!
//! ```text
//!   +------------------+  <- stack_top (rounded down to 16)
//!   | entry's frame    |  <- sp at the entry's first instruction (= top)
//!   | ...              |
//! ```
//!
//! A *running* context has no saved state: its registers are live.
//!
//! # Unwinding
//!
//! The trampoline is the outermost frame of every GVThread stack. Its
//! call-frame information says so explicitly: the return-address column
//! (`x30`) is *undefined* there (`.cfi_undefined x30`, as glibc marks
//! `_start` and `clone`), and the frame-pointer chain ends with `x29 = 0`.
//! An unwinder (the C library's for panics and `std::backtrace`, or the
//! runtime's own for `Runtime::dump`) stops there cleanly instead of reading
//! above the stack. Panics never get that far: the entry function catches
//! them (`task::spawn`).
//!
//! # Floating-point state
//!
//! AAPCS64 makes `d8`–`d15` (the low halves of `v8`–`v15`) callee-saved, and
//! the mode bits of FPCR (rounding, flush-to-zero, default NaN, trap
//! enables) too: a callee that changes them restores them. So `switch` keeps
//! all of FPCR, as x86_64 keeps MXCSR and the x87 control word.
//!
//! FPSR holds the cumulative exception flags (`fetestexcept`) and the
//! saturation flag. The ABI treats them as status, not mode, but C's
//! floating-point environment is a per-thread property that a function may
//! raise flags in and never clears behind its caller's back. A GVThread moves
//! between OS threads and shares each with other GVThreads: without keeping
//! FPSR, `feclearexcept(); x = a / b; yield_now(); fetestexcept()` would see
//! other GVThreads' flags, or lose its own to their `feclearexcept`. So
//! FPSR is kept per GVThread too, which is also what x86_64 does (MXCSR
//! holds both the SSE mode and its flags). Both registers are written only
//! when the resumed value differs from the current one: an FPCR write can
//! stall the floating-point pipeline on some cores, and in the common case
//! (every GVThread on the default mode) nothing is written.

use core::arch::naked_asm;
use core::mem::{offset_of, size_of};

use super::EntryFn;

/// Required alignment of a stack pointer (always, on AArch64).
pub(crate) const STACK_ALIGNMENT: usize = 16;

/// Saved state of a suspended context: its stack pointer.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Context {
    /// Stack pointer of the suspended context; points at a [`SwitchFrame`].
    pub(crate) sp: usize,
}

/// What [`switch`] leaves on a suspended stack, lowest address first.
#[repr(C)]
struct SwitchFrame {
    fpcr: u64,
    fpsr: u64,
    /// `d8`..`d15`.
    d: [u64; 8],
    /// `x19`..`x28`.
    x: [usize; 10],
    fp: usize,
    lr: usize,
}

// The asm below addresses the frame through these offsets (`const`
// operands), and stores registers in pairs with `stp`, whose immediate
// offsets must be multiples of 8 below 512; these asserts pin the layout.
const _: () = {
    assert!(offset_of!(Context, sp) == 0);
    assert!(offset_of!(SwitchFrame, fpcr) == 0);
    assert!(offset_of!(SwitchFrame, fpsr) == 8);
    assert!(offset_of!(SwitchFrame, d) == 16);
    assert!(offset_of!(SwitchFrame, x) == 80);
    assert!(offset_of!(SwitchFrame, fp) == 160);
    assert!(offset_of!(SwitchFrame, lr) == 168);
    assert!(size_of::<SwitchFrame>() == 176);
    assert!(size_of::<SwitchFrame>().is_multiple_of(STACK_ALIGNMENT));
};

/// FPCR at process start on Linux: round to nearest, no traps, no
/// flush-to-zero, no default NaN.
const DEFAULT_FPCR: u64 = 0;

/// Saves the running context into `*from` and resumes `*to`.
///
/// # Safety
/// `from` must be valid for a write of a [`Context`]; `to` must hold a context
/// saved by `switch` or made by [`init_stack`] that nobody else resumes, whose
/// stack is still mapped. Everything the resumed context may touch must be
/// valid for it (the caller's scheduling protocol guarantees this).
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn switch(from: *mut Context, to: *const Context) {
    naked_asm!(
        // x0 = from, x1 = to, x30 = return address; sp is 16-byte aligned.
        "sub sp, sp, #{size}",
        "stp x29, x30, [sp, #{fp}]",
        "stp x19, x20, [sp, #{x}]",
        "stp x21, x22, [sp, #{x} + 16]",
        "stp x23, x24, [sp, #{x} + 32]",
        "stp x25, x26, [sp, #{x} + 48]",
        "stp x27, x28, [sp, #{x} + 64]",
        "stp d8, d9, [sp, #{d}]",
        "stp d10, d11, [sp, #{d} + 16]",
        "stp d12, d13, [sp, #{d} + 32]",
        "stp d14, d15, [sp, #{d} + 48]",
        // x9 = FPCR, x10 = FPSR of the suspended context (kept in x9/x10 to
        // compare with the resumed context's values below).
        "mrs x9, fpcr",
        "mrs x10, fpsr",
        "stp x9, x10, [sp, #{fpcr}]",
        // from.sp = sp (sp cannot be stored directly).
        "mov x11, sp",
        "str x11, [x0]",
        // sp = to.sp; from here on we are on the resumed stack.
        "ldr x11, [x1]",
        "mov sp, x11",
        // x11 = resumed FPCR, x12 = resumed FPSR: write only on a change.
        "ldp x11, x12, [sp, #{fpcr}]",
        "cmp x9, x11",
        "b.eq 2f",
        "msr fpcr, x11",
        "2:",
        "cmp x10, x12",
        "b.eq 3f",
        "msr fpsr, x12",
        "3:",
        "ldp d8, d9, [sp, #{d}]",
        "ldp d10, d11, [sp, #{d} + 16]",
        "ldp d12, d13, [sp, #{d} + 32]",
        "ldp d14, d15, [sp, #{d} + 48]",
        "ldp x19, x20, [sp, #{x}]",
        "ldp x21, x22, [sp, #{x} + 16]",
        "ldp x23, x24, [sp, #{x} + 32]",
        "ldp x25, x26, [sp, #{x} + 48]",
        "ldp x27, x28, [sp, #{x} + 64]",
        "ldp x29, x30, [sp, #{fp}]",
        "add sp, sp, #{size}",
        // Return into the resumed context (or into the trampoline when fresh).
        "ret",
        size = const size_of::<SwitchFrame>(),
        fpcr = const offset_of!(SwitchFrame, fpcr),
        d = const offset_of!(SwitchFrame, d),
        x = const offset_of!(SwitchFrame, x),
        fp = const offset_of!(SwitchFrame, fp),
    )
}

/// First code run on a fresh stack: `x19` = entry function, `x20` = argument.
///
/// Its call-frame information marks it as the outermost frame (see the
/// module docs).
#[unsafe(naked)]
unsafe extern "C" fn trampoline() -> ! {
    naked_asm!(
        ".cfi_startproc",
        // No caller: unwinders stop here.
        ".cfi_undefined x30",
        // sp % 16 == 0 and sp = the stack top here (see init_stack); end
        // the frame-pointer chain (x29 is 0 already, from the fresh frame;
        // this states it where it matters).
        "mov x29, xzr",
        "mov x0, x20",
        // x30 = the address after this call: inside this function, whose
        // CFI above ends every unwind.
        "blr x19",
        // The entry function never returns.
        "brk #0x1",
        ".cfi_endproc",
    )
}

/// Prepares a fresh stack whose highest usable address is `stack_top`.
///
/// Returns the context to pass to [`switch`] to start `entry(arg)` on it.
///
/// # Safety
/// `[stack_top - 192, stack_top)` must be writable memory owned by the
/// caller, and the stack below it large enough for whatever `entry` runs.
pub(crate) unsafe fn init_stack(stack_top: usize, entry: EntryFn, arg: *mut u8) -> Context {
    let top = stack_top & !(STACK_ALIGNMENT - 1);
    let sp = top - size_of::<SwitchFrame>();
    let mut x = [0usize; 10];
    x[0] = entry as *const () as usize; // x19
    x[1] = arg as usize; // x20
    let frame = SwitchFrame { fpcr: DEFAULT_FPCR, fpsr: 0, d: [0; 8], x, fp: 0, lr: trampoline as *const () as usize };
    // SAFETY: the caller guarantees the bytes below `stack_top` are ours to
    // write; `sp` is 16-byte aligned, so the frame is suitably aligned.
    unsafe { (sp as *mut SwitchFrame).write(frame) };
    Context { sp }
}

/// The interrupted code of a signal, as the preemption handler sees it.
pub(crate) struct Interrupted {
    ctx: *mut libc::ucontext_t,
    /// The address of the next instruction to run (`pc`).
    pub(crate) pc: usize,
    /// Blocked in a system call: the kernel either rewound `pc` to the
    /// `svc #0` instruction (a call restarted after the handler,
    /// `SA_RESTART`; it also put the first argument back into `x0`) or left
    /// it just after one with `-EINTR` in `x0` (a call that is not
    /// restarted, such as `nanosleep`).
    pub(crate) in_syscall: bool,
    /// The call will restart: `pc` is at the `svc` and `x0`..`x5`, `x8`
    /// hold its arguments and number.
    restarting: bool,
}

/// A system call the handler found its thread blocked in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syscall {
    /// The call's number (`x8`).
    pub(crate) nr: libc::c_long,
    /// Its six arguments (`x0`..`x5`). For a call that returned `-EINTR`,
    /// the first one is gone: `x0` holds the result (see
    /// [`first_arg_known`](Self::first_arg_known)).
    pub(crate) args: [libc::c_long; 6],
    /// It returned `-EINTR` (instead of being restarted).
    pub(crate) interrupted: bool,
    /// `args[0]` is the call's first argument. False for a call that
    /// returned `-EINTR`: AArch64 returns results in `x0`, over the first
    /// argument.
    pub(crate) first_arg_known: bool,
}

/// `svc #0`: the Linux system call instruction (4 bytes, little-endian).
const SVC_0: u32 = 0xd400_0001;
const INSN: usize = 4;
const PAGE: usize = 4096;

impl Interrupted {
    /// Reads the interrupted state from a signal handler's context.
    ///
    /// # Safety
    /// `ctx` must be the `ucontext_t` the kernel passed to an `SA_SIGINFO`
    /// handler running now, and the value must not outlive the handler.
    pub(crate) unsafe fn from_ucontext(ctx: *mut libc::c_void) -> Interrupted {
        let ctx = ctx.cast::<libc::ucontext_t>();
        // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
        let mc = unsafe { &(*ctx).uc_mcontext };
        let pc = mc.pc as usize;
        let x0 = mc.regs[0] as i64;
        // `pc` is the next instruction to run, so its page is mapped and
        // readable (Linux maps code readable). Instructions are 4 bytes and
        // 4-aligned, so the one at `pc` lies in `pc`'s page; the one before
        // it too unless `pc` starts the page (the previous page may be
        // unmapped). A misaligned `pc` (it would fault when resumed) is
        // never read.
        let aligned = pc.is_multiple_of(INSN);
        // SAFETY: an aligned instruction at `pc` lies in `pc`'s page.
        let at = aligned && unsafe { (pc as *const u32).read() } == SVC_0;
        let after = x0 == -(libc::EINTR as i64)
            && aligned
            && pc % PAGE >= INSN
            // SAFETY: `pc - 4` lies in `pc`'s page (offset >= 4).
            && unsafe { ((pc - INSN) as *const u32).read() } == SVC_0;
        Interrupted { ctx, pc, in_syscall: at || after, restarting: at }
    }

    /// The system call the thread was blocked in. AArch64 Linux passes the
    /// number in `x8`, which the kernel never changes, so it is always
    /// known; the first argument only for a call about to restart.
    pub(crate) fn syscall(&self) -> Option<Syscall> {
        if !self.in_syscall {
            return None;
        }
        // SAFETY: `ctx` is the handler's live ucontext (see `from_ucontext`).
        let regs = unsafe { &(*self.ctx).uc_mcontext.regs };
        let r = |i: usize| regs[i] as libc::c_long;
        Some(Syscall {
            nr: r(8),
            args: [r(0), r(1), r(2), r(3), r(4), r(5)],
            interrupted: !self.restarting,
            first_arg_known: self.restarting,
        })
    }

    /// Makes the interrupted code resume after its system call with
    /// `result` (a raw kernel result: a value, or `-errno`).
    ///
    /// # Safety
    /// Only for the call [`syscall`](Self::syscall) returned, once it was
    /// carried out; the handler must then return to the interrupted code.
    pub(crate) unsafe fn complete_syscall(&self, result: libc::c_long) {
        // SAFETY: `ctx` is the handler's live ucontext; the kernel restores
        // these registers from it when the handler returns.
        let mc = unsafe { &mut (*self.ctx).uc_mcontext };
        mc.regs[0] = result as u64;
        if self.restarting {
            mc.pc += INSN as u64;
        }
    }
}

/// The registers a suspended context resumes with, as an unwinder needs them:
/// its program counter (where `switch` returns to, also in `lr`), its stack
/// pointer after that return, the frame pointer and the callee-saved
/// registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SuspendedRegs {
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    pub(crate) fp: usize,
    /// `x19`..`x28`.
    pub(crate) x: [usize; 10],
}

/// Asks the CPU to start loading the cache line holding `p` into L1, page
/// walk included (`prfm pldl1keep`), so that a later access finds it near.
/// A hint: any address is allowed, and one that is not mapped is dropped
/// silently.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    // SAFETY: `prfm` reads nothing architecturally and never faults, whatever
    // the address; it touches no register, flag or stack.
    unsafe { core::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags)) };
}

/// Reads the registers saved by [`switch`] (or [`init_stack`]) for `ctx`.
///
/// # Safety
/// `ctx` must be a suspended context whose stack is mapped and which nobody
/// resumes while this reads it.
pub(crate) unsafe fn suspended_regs(ctx: &Context) -> SuspendedRegs {
    // SAFETY: the caller guarantees `ctx.sp` points at a `SwitchFrame` on a
    // mapped stack that does not change meanwhile.
    let f = unsafe { &*(ctx.sp as *const SwitchFrame) };
    SuspendedRegs { pc: f.lr, sp: ctx.sp + size_of::<SwitchFrame>(), fp: f.fp, x: f.x }
}

/// Removes a pointer-authentication code from a return address that code
/// built with `-mbranch-protection` signed before saving it (its unwind
/// information says so). `xpaclri` is in the hint space: on a CPU without
/// pointer authentication it does nothing, as signing did nothing there.
pub(crate) fn strip_return_address(ra: usize) -> usize {
    let out: usize;
    // SAFETY: `xpaclri` only rewrites x30, which is declared as the operand.
    unsafe {
        core::arch::asm!("xpaclri", inout("x30") ra => out, options(nomem, nostack, pure, preserves_flags));
    }
    out
}
