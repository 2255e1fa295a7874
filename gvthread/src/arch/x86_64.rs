//! x86_64 System V context switch.
//!
//! # Stack layouts
//!
//! A *suspended* context's stack pointer points at a [`SwitchFrame`]:
//!
//! ```text
//!   higher addresses
//!   +------------------+
//!   | return address   |  <- where `switch` returns to when resumed
//!   | rbp              |
//!   | rbx              |
//!   | r12              |
//!   | r13              |
//!   | r14              |
//!   | r15              |
//!   | x87 CW | MXCSR   |  <- Context::sp (16-byte aligned)
//!   +------------------+
//!   lower addresses
//! ```
//!
//! A *fresh* stack made by [`init_stack`] holds the same frame, with the
//! return address pointing at [`trampoline`], `r12` = entry function and
//! `r13` = its argument. Resuming it "returns" into the trampoline with
//! `rsp` 16-byte aligned; the trampoline clears `rbp` (ending frame-pointer
//! chains) and `call`s the entry function, so the entry function sees the ABI's
//! `rsp % 16 == 8` at its first instruction, exactly as after a normal call.
//!
//! A *running* context has no saved state: its registers are live.
//!
//! MXCSR (SSE rounding/exception masks) and the x87 control word are
//! callee-saved in the System V ABI, so they are switched too.

use core::arch::naked_asm;
use core::mem::{offset_of, size_of};

use super::EntryFn;

/// Required alignment of a stack pointer at a call boundary.
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
    mxcsr: u32,
    x87_cw: u16,
    _pad: u16,
    r15: usize,
    r14: usize,
    r13: usize,
    r12: usize,
    rbx: usize,
    rbp: usize,
    ret: usize,
}

// The asm below pushes rbp, rbx, r12..r15, then reserves 8 bytes for the FP
// control words; these asserts pin the frame it builds to the struct.
const _: () = {
    assert!(offset_of!(Context, sp) == 0);
    assert!(offset_of!(SwitchFrame, mxcsr) == 0);
    assert!(offset_of!(SwitchFrame, x87_cw) == 4);
    assert!(offset_of!(SwitchFrame, r15) == 8);
    assert!(offset_of!(SwitchFrame, r14) == 16);
    assert!(offset_of!(SwitchFrame, r13) == 24);
    assert!(offset_of!(SwitchFrame, r12) == 32);
    assert!(offset_of!(SwitchFrame, rbx) == 40);
    assert!(offset_of!(SwitchFrame, rbp) == 48);
    assert!(offset_of!(SwitchFrame, ret) == 56);
    assert!(size_of::<SwitchFrame>() == 64);
    assert!(size_of::<SwitchFrame>().is_multiple_of(STACK_ALIGNMENT));
};

/// Default MXCSR: all exceptions masked, round to nearest.
const DEFAULT_MXCSR: u32 = 0x1F80;
/// Default x87 control word: all exceptions masked, 64-bit precision, nearest.
const DEFAULT_X87_CW: u16 = 0x037F;

/// Saves the running context into `*from` and resumes `*to`.
///
/// # Safety
/// `from` must be valid for a write of a [`Context`]; `to` must hold a context
/// saved by `switch` or made by [`init_stack`] that nobody else resumes, whose
/// stack is still mapped. Everything the resumed context may touch must be
/// valid for it (the caller's scheduling protocol guarantees this).
#[unsafe(naked)]
pub(crate) unsafe extern "sysv64" fn switch(from: *mut Context, to: *const Context) {
    naked_asm!(
        // On entry rsp % 16 == 8 (the return address is on top).
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        // 8 more bytes: rsp % 16 == 0, room for MXCSR and the x87 control word.
        "sub rsp, 8",
        "stmxcsr [rsp]",
        "fnstcw [rsp + 4]",
        // from.sp = rsp (rdi = from)
        "mov [rdi], rsp",
        // rsp = to.sp (rsi = to); from here on we are on the resumed stack.
        "mov rsp, [rsi]",
        "ldmxcsr [rsp]",
        "fldcw [rsp + 4]",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        // Return into the resumed context (or into the trampoline when fresh).
        "ret",
    )
}

/// First code run on a fresh stack: `r12` = entry function, `r13` = argument.
#[unsafe(naked)]
unsafe extern "sysv64" fn trampoline() -> ! {
    naked_asm!(
        // rsp % 16 == 0 here (see init_stack); end the frame-pointer chain.
        "xor ebp, ebp",
        "mov rdi, r13",
        // The call pushes a return address: the entry sees rsp % 16 == 8.
        "call r12",
        // The entry function never returns.
        "ud2",
    )
}

/// Prepares a fresh stack whose highest usable address is `stack_top`.
///
/// Returns the context to pass to [`switch`] to start `entry(arg)` on it.
///
/// # Safety
/// `[stack_top - 64, stack_top)` must be writable memory owned by the caller,
/// and the stack below it large enough for whatever `entry` runs.
pub(crate) unsafe fn init_stack(stack_top: usize, entry: EntryFn, arg: *mut u8) -> Context {
    let top = stack_top & !(STACK_ALIGNMENT - 1);
    let sp = top - size_of::<SwitchFrame>();
    let frame = SwitchFrame {
        mxcsr: DEFAULT_MXCSR,
        x87_cw: DEFAULT_X87_CW,
        _pad: 0,
        r15: 0,
        r14: 0,
        r13: arg as usize,
        r12: entry as *const () as usize,
        rbx: 0,
        rbp: 0,
        ret: trampoline as *const () as usize,
    };
    // SAFETY: the caller guarantees the 64 bytes below `stack_top` are ours to
    // write; `sp` is 16-byte aligned, so the frame is suitably aligned.
    unsafe { (sp as *mut SwitchFrame).write(frame) };
    Context { sp }
}

/// The registers a suspended context resumes with, as an unwinder needs them:
/// its program counter (where `switch` returns to), its stack pointer after
/// that return, and the callee-saved registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SuspendedRegs {
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    pub(crate) rbp: usize,
    pub(crate) rbx: usize,
    pub(crate) r12: usize,
    pub(crate) r13: usize,
    pub(crate) r14: usize,
    pub(crate) r15: usize,
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
    SuspendedRegs {
        pc: f.ret,
        sp: ctx.sp + size_of::<SwitchFrame>(),
        rbp: f.rbp,
        rbx: f.rbx,
        r12: f.r12,
        r13: f.r13,
        r14: f.r14,
        r15: f.r15,
    }
}
