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

/// Asks the CPU to start loading the cache line holding `p`, page walk
/// included (`prefetcht0`), so that a later access finds it near. A hint:
/// any address is allowed, and one that is not mapped is dropped silently.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    // SAFETY: `prefetcht0` reads nothing architecturally and never faults,
    // whatever the address; it touches no register, flag or stack.
    unsafe { core::arch::asm!("prefetcht0 [{0}]", in(reg) p, options(nostack, readonly, preserves_flags)) };
}

/// The interrupted code of a signal, as the preemption handler sees it.
pub(crate) struct Interrupted {
    ctx: *mut libc::ucontext_t,
    /// The address of the next instruction to run (`rip`).
    pub(crate) pc: usize,
    /// Blocked in a system call: the kernel either rewound `rip` to the
    /// `syscall` instruction (a call restarted after the handler, `SA_RESTART`)
    /// or left it just after one with `-EINTR` in `rax` (a call that is not
    /// restarted, such as `nanosleep`).
    pub(crate) in_syscall: bool,
    /// The call will restart: `rip` is at the `syscall` and `rax` holds its
    /// number again.
    restarting: bool,
}

/// A system call the handler found its thread blocked in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syscall {
    /// The call's number.
    pub(crate) nr: libc::c_long,
    /// Its six arguments (`rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`).
    pub(crate) args: [libc::c_long; 6],
    /// It returned `-EINTR` (instead of being restarted).
    pub(crate) interrupted: bool,
    /// `args[0]` is the call's first argument: always on x86_64, where the
    /// result goes to `rax`, not over an argument.
    pub(crate) first_arg_known: bool,
}

const SYSCALL: [u8; 2] = [0x0f, 0x05];
/// `mov $imm32, %eax`: how glibc loads the number of an inline system call.
const MOV_IMM32_EAX: u8 = 0xb8;
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
        let regs = unsafe { &(*ctx).uc_mcontext.gregs };
        let pc = regs[libc::REG_RIP as usize] as usize;
        let rax = regs[libc::REG_RAX as usize];
        // `pc` is the next instruction to run, so its page is mapped and
        // readable (x86_64 code pages are). Only read bytes in that page: the
        // next and the previous page may be unmapped.
        let offset = pc % PAGE;
        // SAFETY: `pc` and `pc + 1` lie in `pc`'s page (offset <= PAGE - 2).
        let at = offset <= PAGE - 2 && unsafe { (pc as *const [u8; 2]).read_unaligned() } == SYSCALL;
        // SAFETY: `pc - 2` and `pc - 1` lie in `pc`'s page (offset >= 2).
        let after = rax == -(libc::EINTR as i64)
            && offset >= 2
            && unsafe { ((pc - 2) as *const [u8; 2]).read_unaligned() } == SYSCALL;
        Interrupted { ctx, pc, in_syscall: at || after, restarting: at }
    }

    /// The system call the thread was blocked in, when its number is known:
    /// always for a call about to restart; for one that returned `-EINTR`,
    /// only when glibc's `mov $nr, %eax; syscall` sequence precedes `rip`.
    pub(crate) fn syscall(&self) -> Option<Syscall> {
        if !self.in_syscall {
            return None;
        }
        // SAFETY: `ctx` is the handler's live ucontext (see `from_ucontext`).
        let regs = unsafe { &(*self.ctx).uc_mcontext.gregs };
        let nr = if self.restarting {
            regs[libc::REG_RAX as usize]
        } else {
            // The 5-byte `mov` ends where the 2-byte `syscall` starts.
            let mov = self.pc.checked_sub(7)?;
            if mov / PAGE != self.pc / PAGE {
                return None;
            }
            // SAFETY: `mov..pc` lies in `pc`'s page, which is mapped code.
            let bytes = unsafe { (mov as *const [u8; 5]).read_unaligned() };
            if bytes[0] != MOV_IMM32_EAX {
                return None;
            }
            i32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as i64
        };
        let r = |i: libc::c_int| regs[i as usize];
        Some(Syscall {
            nr,
            args: [
                r(libc::REG_RDI),
                r(libc::REG_RSI),
                r(libc::REG_RDX),
                r(libc::REG_R10),
                r(libc::REG_R8),
                r(libc::REG_R9),
            ],
            interrupted: !self.restarting,
            first_arg_known: true,
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
        let regs = unsafe { &mut (*self.ctx).uc_mcontext.gregs };
        regs[libc::REG_RAX as usize] = result;
        if self.restarting {
            regs[libc::REG_RIP as usize] += SYSCALL.len() as i64;
        }
    }
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
