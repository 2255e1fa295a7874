//! Unwinding a suspended GVThread's stack with the DWARF call-frame
//! information (`.eh_frame`) of the loaded objects.
//!
//! # Why CFI and not frame pointers
//!
//! Rust's release profile omits frame pointers on x86_64 (and C code built
//! with `-fomit-frame-pointer` does on aarch64), and gvthread
//! cannot impose `-C force-frame-pointers` on the programs that use it, so a
//! frame-pointer walk would lose every frame compiled without them (most of
//! std and of the user's code). `.eh_frame` is always there, because panics
//! unwind with it; it describes, for every instruction, how to find the
//! caller's stack pointer (the CFA), return address and callee-saved
//! registers. It costs nothing at run time: it is read only when a dump is
//! asked for. Symbol names come separately, from the symbol table and the
//! line tables (`debug = 1` is enough), see `runtime::dump`.
//!
//! # Protocol
//!
//! 1. [`Modules::loaded`] lists the loaded objects (`dl_iterate_phdr`, on a
//!    normal thread, never in a signal handler): for each, its executable
//!    segments and its `.eh_frame_hdr` lookup table.
//! 2. [`unwind`] starts from the registers a suspended context resumes with
//!    (`arch::suspended_regs`): its program counter is a return address
//!    into the function that called `switch`.
//! 3. For each frame, it looks up the FDE of `pc - 1` (a return address
//!    points after the call; the call itself belongs to the caller's
//!    function even when it is its last instruction), computes the CFA and
//!    restores the return address and the callee-saved registers.
//! 4. It stops at a frame without unwind information (the trampoline at the
//!    bottom of every GVThread stack has none), at a zero return address, at
//!    a rule it does not evaluate (DWARF expressions, which only hand-written
//!    code and signal frames use), or when a step would leave the stack or
//!    not move up it.
//!
//! # Memory safety
//!
//! Every stack read is checked against the GVThread's stack bounds, so even
//! wrong unwind information reads nothing but that stack. The caller must
//! make sure the stack does not change meanwhile (the dump takes the
//! GVThread out of reach of its wakers first). Nothing here allocates once
//! the [`Modules`] and the output vector exist, so the walk can run inside a
//! runtime section.

use std::ffi::{c_int, c_void};

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, NativeEndian, ParsedEhFrameHdr, Register, RegisterRule,
    UnwindContext, UnwindSection,
};

use crate::arch::SuspendedRegs;

type Slice = EndianSlice<'static, NativeEndian>;

/// The unwind tables of one loaded object.
struct Module {
    /// Executable segments: `[start, end)` absolute addresses.
    text: Vec<(u64, u64)>,
    bases: BaseAddresses,
    hdr: ParsedEhFrameHdr<Slice>,
    eh_frame: EhFrame<Slice>,
}

/// The loaded objects with unwind tables (the program, its shared
/// libraries, the vDSO).
///
/// Their tables are borrowed from the objects' mapped memory: valid while
/// they stay loaded. A `Modules` is built per dump and dropped after it; a
/// library `dlclose`d during a dump is the one unsupported case.
pub(crate) struct Modules(Vec<Module>);

impl Modules {
    /// Lists the objects loaded now.
    pub(crate) fn loaded() -> Modules {
        let mut modules = Vec::new();
        // SAFETY: `collect` matches the callback type and only uses `data`
        // as the `Vec<Module>` passed here, during this call.
        unsafe { libc::dl_iterate_phdr(Some(collect), (&mut modules as *mut Vec<Module>).cast()) };
        Modules(modules)
    }

    fn find(&self, pc: u64) -> Option<&Module> {
        self.0.iter().find(|m| m.text.iter().any(|&(lo, hi)| (lo..hi).contains(&pc)))
    }
}

/// `dl_iterate_phdr` callback: records one object's unwind tables.
unsafe extern "C" fn collect(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: `dl_iterate_phdr` passes a valid `info` for the duration of the
    // call, and `data` is the `Vec<Module>` given by `Modules::loaded`.
    let (info, modules) = unsafe { (&*info, &mut *data.cast::<Vec<Module>>()) };
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    let bias = info.dlpi_addr;
    // SAFETY: the loader's program headers for this object, `dlpi_phnum` long.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut loads = Vec::new();
    let mut eh_hdr = None;
    for ph in phdrs {
        let start = bias.wrapping_add(ph.p_vaddr);
        match ph.p_type {
            libc::PT_LOAD => loads.push((start, start + ph.p_memsz, ph.p_flags & libc::PF_X != 0)),
            libc::PT_GNU_EH_FRAME => eh_hdr = Some((start, ph.p_memsz)),
            _ => {}
        }
    }
    let Some((hdr_addr, hdr_len)) = eh_hdr else { return 0 };
    let text: Vec<(u64, u64)> = loads.iter().filter(|l| l.2).map(|l| (l.0, l.1)).collect();
    let Some(&(text_start, _)) = text.first() else { return 0 };
    // SAFETY: PT_GNU_EH_FRAME lies in a loaded segment, mapped while the
    // object stays loaded (see `Modules`).
    let hdr_bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(hdr_addr as *const u8, hdr_len as usize) };
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr_addr).set_text(text_start);
    let Ok(hdr) = EhFrameHdr::new(hdr_bytes, NativeEndian).parse(&bases, 8) else { return 0 };
    let Ok(eh_frame_addr) = hdr.eh_frame_ptr().direct() else { return 0 };
    // `.eh_frame` has no length of its own here: it runs to the end of its
    // segment at most (lookups only read the entries the table points at).
    let Some(&(_, seg_end, _)) = loads.iter().find(|l| (l.0..l.1).contains(&eh_frame_addr)) else { return 0 };
    // SAFETY: within one loaded segment, mapped while the object is loaded.
    let eh_bytes: &'static [u8] =
        unsafe { std::slice::from_raw_parts(eh_frame_addr as *const u8, (seg_end - eh_frame_addr) as usize) };
    let bases = bases.set_eh_frame(eh_frame_addr);
    let mut eh_frame = EhFrame::new(eh_bytes, NativeEndian);
    eh_frame.set_vendor(dwarf::VENDOR);
    modules.push(Module { text, bases, hdr, eh_frame });
    0
}

/// Scratch space for [`unwind`], allocated up front.
pub(crate) struct Unwinder {
    ctx: Box<UnwindContext<usize>>,
}

impl Unwinder {
    pub(crate) fn new() -> Unwinder {
        Unwinder { ctx: Box::new(UnwindContext::new()) }
    }
}

/// The architecture's DWARF registers: which are tracked (the callee-saved
/// ones, the stack pointer and the return address), and their values in a
/// suspended context.
#[cfg(target_arch = "x86_64")]
mod dwarf {
    use gimli::{Register, X86_64};

    use crate::arch::SuspendedRegs;

    pub(super) const SP: Register = X86_64::RSP;
    /// The return-address column (a pseudo-register on x86_64).
    pub(super) const RA: Register = X86_64::RA;
    /// rbx, rbp, rsp, r12-r15, and the return-address column.
    pub(super) const TRACKED: [Register; 8] =
        [X86_64::RBX, X86_64::RBP, X86_64::RSP, X86_64::R12, X86_64::R13, X86_64::R14, X86_64::R15, X86_64::RA];
    pub(super) const VENDOR: gimli::Vendor = gimli::Vendor::Default;

    /// The registers known at the start of a walk.
    pub(super) fn start(s: &SuspendedRegs) -> [(Register, usize); 7] {
        [
            (X86_64::RBX, s.rbx),
            (X86_64::RBP, s.rbp),
            (X86_64::RSP, s.sp),
            (X86_64::R12, s.r12),
            (X86_64::R13, s.r13),
            (X86_64::R14, s.r14),
            (X86_64::R15, s.r15),
        ]
    }

    /// The return address a frame's rules produced (nothing to undo here).
    pub(super) fn return_address(ra: u64, _row: &gimli::UnwindTableRow<usize>) -> u64 {
        ra
    }
}

/// The architecture's DWARF registers: which are tracked (the callee-saved
/// ones, the stack pointer and the return address), and their values in a
/// suspended context.
#[cfg(target_arch = "aarch64")]
mod dwarf {
    use gimli::{AArch64, Register, RegisterRule};

    use crate::arch::SuspendedRegs;

    pub(super) const SP: Register = AArch64::SP;
    /// The return-address column is the link register itself.
    pub(super) const RA: Register = AArch64::X30;
    /// x19-x28, fp (x29), lr (x30), sp.
    pub(super) const TRACKED: [Register; 13] = [
        AArch64::X19,
        AArch64::X20,
        AArch64::X21,
        AArch64::X22,
        AArch64::X23,
        AArch64::X24,
        AArch64::X25,
        AArch64::X26,
        AArch64::X27,
        AArch64::X28,
        AArch64::X29,
        AArch64::X30,
        AArch64::SP,
    ];
    /// Parses `DW_CFA_AARCH64_negate_ra_state` (pointer authentication).
    pub(super) const VENDOR: gimli::Vendor = gimli::Vendor::AArch64;

    /// The registers known at the start of a walk: `lr` holds the resume
    /// address, as it does when `switch` returns.
    pub(super) fn start(s: &SuspendedRegs) -> [(Register, usize); 13] {
        let x = |i: usize| (Register(19 + i as u16), s.x[i]);
        [
            x(0),
            x(1),
            x(2),
            x(3),
            x(4),
            x(5),
            x(6),
            x(7),
            x(8),
            x(9),
            (AArch64::X29, s.fp),
            (AArch64::X30, s.pc),
            (AArch64::SP, s.sp),
        ]
    }

    /// The return address a frame's rules produced, without the
    /// pointer-authentication code the frame signed it with, if any.
    pub(super) fn return_address(ra: u64, row: &gimli::UnwindTableRow<usize>) -> u64 {
        match row.register(AArch64::RA_SIGN_STATE) {
            Some(RegisterRule::Constant(1)) => crate::arch::strip_return_address(ra as usize) as u64,
            _ => ra,
        }
    }
}

/// Register values of one frame (`None`: unknown), indexed by DWARF number.
#[derive(Clone, Copy)]
struct Regs([Option<u64>; 32]);

impl Regs {
    fn get(&self, r: Register) -> Option<u64> {
        self.0.get(r.0 as usize).copied().flatten()
    }
    fn set(&mut self, r: Register, v: Option<u64>) {
        if let Some(slot) = self.0.get_mut(r.0 as usize) {
            *slot = v;
        }
    }
}

/// Unwinds a suspended stack whose usable bytes are `[stack_lo, stack_hi)`,
/// starting from `start`; pushes the return addresses (frame 0 first: the
/// function that called `switch`) into `out`, at most `out.capacity()` of
/// them, without reallocating.
///
/// The caller guarantees the stack does not change during the call.
pub(crate) fn unwind(
    modules: &Modules,
    unwinder: &mut Unwinder,
    start: SuspendedRegs,
    stack_lo: usize,
    stack_hi: usize,
    out: &mut Vec<usize>,
) {
    let read = |addr: u64| -> Option<u64> {
        let a = addr as usize;
        if a < stack_lo || a.checked_add(8)? > stack_hi {
            return None;
        }
        // SAFETY: inside the GVThread's mapped stack, which the caller keeps
        // unchanged; unaligned reads are fine on x86_64 and aarch64, and
        // `read_unaligned` makes them defined.
        Some(unsafe { (a as *const u64).read_unaligned() })
    };
    let mut regs = Regs([None; 32]);
    for (r, v) in dwarf::start(&start) {
        regs.set(r, Some(v as u64));
    }
    let mut pc = start.pc as u64;
    while out.len() < out.capacity() && pc != 0 {
        out.push(pc as usize);
        let lookup = pc - 1;
        let Some(module) = modules.find(lookup) else { return };
        let Some(table) = module.hdr.table() else { return };
        let Ok(row) = table.unwind_info_for_address(
            &module.eh_frame,
            &module.bases,
            &mut unwinder.ctx,
            lookup,
            EhFrame::cie_from_offset,
        ) else {
            return;
        };
        let cfa = match *row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => match regs.get(register) {
                Some(v) => v.wrapping_add(offset as u64),
                None => return,
            },
            CfaRule::Expression(_) => return,
        };
        let mut next = regs;
        for r in dwarf::TRACKED {
            let value = match row.register(r) {
                // Not mentioned: callee-saved and untouched.
                None | Some(RegisterRule::SameValue) => regs.get(r),
                Some(RegisterRule::Offset(n)) => read(cfa.wrapping_add(n as u64)),
                Some(RegisterRule::ValOffset(n)) => Some(cfa.wrapping_add(n as u64)),
                Some(RegisterRule::Register(o)) => regs.get(o),
                Some(RegisterRule::Constant(v)) => Some(v),
                Some(_) => None,
            };
            next.set(r, value);
        }
        // The caller's stack pointer is the CFA by definition.
        next.set(dwarf::SP, Some(cfa));
        let old_sp = regs.get(dwarf::SP).unwrap_or(0);
        if cfa <= old_sp || cfa as usize > stack_hi {
            return;
        }
        let Some(ret) = next.get(dwarf::RA) else { return };
        let ret = dwarf::return_address(ret, row);
        next.set(dwarf::RA, Some(ret));
        regs = next;
        pc = ret;
    }
}
