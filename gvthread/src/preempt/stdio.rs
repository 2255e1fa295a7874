//! Code that holds std's stdout or stderr lock: never frozen.
//!
//! std's `Stdout` and `Stderr` are *reentrant* locks owned by a thread, with
//! a `RefCell` inside. A role's GVThreads all run as one thread (its identity
//! thread, see `sched::identity`), so if the handler froze a GVThread in the
//! middle of a `println!` and lent its role to a spare, the next GVThread of
//! the role to print would re-enter the lock as its owner and panic on the
//! `RefCell` ("already borrowed"). So the handler declines (and the monitor
//! retries at its next tick, as for libc code) while any frame of the
//! interrupted stack is inside std's printing functions: `print!`,
//! `eprint!` and their `ln` forms, and `write!`/`write_all`/`flush` on
//! `Stdout`/`Stderr` (each takes the lock for its own duration) and on their
//! locks (`StdoutLock`, `StderrLock`: each borrows the `RefCell`).
//!
//! # How
//!
//! When the handler is installed, the code ranges of those functions are
//! read from the program's unwind tables (their FDEs). The handler checks
//! the interrupted program counter and scans the interrupted stack, from its
//! stack pointer up, for a return address inside one of them (every active
//! call leaves one). A data word that happens to look like such an address
//! only delays a preemption by a tick. The scan is bounded (`SCAN_LIMIT`).
//!
//! A lock held explicitly (`let out = stdout().lock();`) across other code
//! can still be frozen between two writes: no `RefCell` borrow is active
//! then, so a GVThread of the same role that prints meanwhile re-enters the
//! lock and its output lands between the two writes (no panic); see
//! `docs/safety.md`.

use std::io::{Stderr, StderrLock, Stdout, StdoutLock, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

const MAX_RANGES: usize = 40;
/// At most this many bytes of stack above the stack pointer are scanned.
const SCAN_LIMIT: usize = 1 << 20;

#[allow(clippy::declare_interior_mutable_const)] // used only to initialise the array
const EMPTY: (AtomicUsize, AtomicUsize) = (AtomicUsize::new(0), AtomicUsize::new(0));
static RANGES: [(AtomicUsize, AtomicUsize); MAX_RANGES] = [EMPTY; MAX_RANGES];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static INIT: Once = Once::new();

/// The `Write` methods of `Stdout`/`Stderr` (which take the lock) and of
/// their locks (which borrow the `RefCell` inside).
fn write_methods() -> Vec<usize> {
    type OutLock = StdoutLock<'static>;
    type ErrLock = StderrLock<'static>;
    type WriteVectored<T> = fn(&mut T, &[std::io::IoSlice<'_>]) -> std::io::Result<usize>;
    type WriteFmt<T> = fn(&mut T, std::fmt::Arguments<'_>) -> std::io::Result<()>;
    type WriteAll<T> = fn(&mut T, &[u8]) -> std::io::Result<()>;
    type WriteOne<T> = fn(&mut T, &[u8]) -> std::io::Result<usize>;
    type Flush<T> = fn(&mut T) -> std::io::Result<()>;
    vec![
        <Stdout as Write>::write_fmt as WriteFmt<Stdout> as usize,
        <&Stdout as Write>::write_fmt as WriteFmt<&Stdout> as usize,
        <Stderr as Write>::write_fmt as WriteFmt<Stderr> as usize,
        <&Stderr as Write>::write_fmt as WriteFmt<&Stderr> as usize,
        <Stdout as Write>::write_all as WriteAll<Stdout> as usize,
        <&Stdout as Write>::write_all as WriteAll<&Stdout> as usize,
        <Stderr as Write>::write_all as WriteAll<Stderr> as usize,
        <&Stderr as Write>::write_all as WriteAll<&Stderr> as usize,
        <Stdout as Write>::write as WriteOne<Stdout> as usize,
        <&Stdout as Write>::write as WriteOne<&Stdout> as usize,
        <Stderr as Write>::write as WriteOne<Stderr> as usize,
        <&Stderr as Write>::write as WriteOne<&Stderr> as usize,
        <Stdout as Write>::flush as Flush<Stdout> as usize,
        <&Stdout as Write>::flush as Flush<&Stdout> as usize,
        <OutLock as Write>::write_fmt as WriteFmt<OutLock> as usize,
        <OutLock as Write>::write_all as WriteAll<OutLock> as usize,
        <OutLock as Write>::write as WriteOne<OutLock> as usize,
        <OutLock as Write>::write_vectored as WriteVectored<OutLock> as usize,
        <OutLock as Write>::flush as Flush<OutLock> as usize,
        <ErrLock as Write>::write_fmt as WriteFmt<ErrLock> as usize,
        <ErrLock as Write>::write_all as WriteAll<ErrLock> as usize,
        <ErrLock as Write>::write as WriteOne<ErrLock> as usize,
        <ErrLock as Write>::write_vectored as WriteVectored<ErrLock> as usize,
    ]
}

/// Formats nothing, recording the return addresses of its callers.
struct Probe<'a>(&'a std::cell::RefCell<Vec<usize>>);

impl std::fmt::Display for Probe<'_> {
    #[inline(never)]
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut frames = self.0.borrow_mut();
        backtrace::trace(|f| {
            frames.push(f.ip() as usize);
            frames.len() < 64
        });
        Ok(())
    }
}

/// The call chain from `print!`/`eprint!` down to the `Display` impl it
/// formats (std's `_print`, `print_to`, and whatever std inlined into them;
/// they are not nameable on stable Rust), minus the frames a plain
/// `format!` also has (`core::fmt::write`, the probe, the callers).
fn print_chain() -> Vec<usize> {
    #[inline(never)]
    fn capture(f: &dyn Fn(&std::cell::RefCell<Vec<usize>>)) -> Vec<usize> {
        let frames = std::cell::RefCell::new(Vec::new());
        f(&frames);
        frames.into_inner()
    }
    // On a thread of its own: a test harness captures the output of its
    // threads through another path.
    std::thread::spawn(|| {
        let printed = capture(&|c| print!("{}", Probe(c)));
        let eprinted = capture(&|c| eprint!("{}", Probe(c)));
        let formatted = capture(&|c| drop(format!("{}", Probe(c))));
        printed.into_iter().chain(eprinted).filter(|ip| !formatted.contains(ip)).collect::<Vec<usize>>()
    })
    .join()
    .unwrap_or_default()
}

/// Reads the ranges (once per process; allocates and starts a thread, so
/// never in a handler).
pub(crate) fn init() {
    INIT.call_once(|| {
        let modules = crate::debug::unwind::Modules::loaded();
        let mut n = 0;
        // Return addresses point after the call: look up the byte before.
        let addrs =
            write_methods().into_iter().map(|f| f as u64).chain(print_chain().into_iter().map(|ip| ip as u64 - 1));
        for a in addrs {
            let Some((lo, hi)) = modules.function_range(a) else { continue };
            let (lo, hi) = (lo as usize, hi as usize);
            let known = RANGES[..n].iter().any(|r| r.0.load(Ordering::Relaxed) == lo);
            if !known && n < MAX_RANGES {
                RANGES[n].0.store(lo, Ordering::Relaxed);
                RANGES[n].1.store(hi, Ordering::Relaxed);
                n += 1;
            }
        }
        COUNT.store(n, Ordering::Release);
    });
}

fn in_ranges(ranges: &[(AtomicUsize, AtomicUsize)], addr: usize) -> bool {
    ranges.iter().any(|(lo, hi)| (lo.load(Ordering::Relaxed)..hi.load(Ordering::Relaxed)).contains(&addr))
}

/// Whether code interrupted at `pc`, with stack pointer `sp` on a stack that
/// ends at `stack_top`, may be inside one of the functions above.
/// Async-signal-safe (reads only).
pub(crate) fn may_hold_lock(pc: usize, sp: usize, stack_top: usize) -> bool {
    let ranges = &RANGES[..COUNT.load(Ordering::Acquire)];
    if ranges.is_empty() {
        return false;
    }
    if in_ranges(ranges, pc) {
        return true;
    }
    let end = stack_top.min(sp.saturating_add(SCAN_LIMIT));
    let mut at = (sp + 7) & !7;
    while at + 8 <= end {
        // SAFETY: `[sp, stack_top)` is the interrupted GVThread's live stack
        // (mapped, and unchanged while its thread runs this handler).
        let word = unsafe { (at as *const usize).read() };
        if in_ranges(ranges, word) {
            return true;
        }
        at += 8;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_functions_are_found_and_a_return_address_into_them_is_seen() {
        init();
        assert!(COUNT.load(Ordering::Acquire) >= 4, "too few stdio ranges found");
        let chain = print_chain();
        assert!(!chain.is_empty(), "print! has no frames of its own");
        let ip = chain[0];
        assert!(may_hold_lock(ip - 1, 0, 0));
        // A fake stack holding one return address into the print chain.
        let stack = [0usize, 17, ip, 0];
        let sp = stack.as_ptr() as usize;
        assert!(may_hold_lock(0, sp, sp + std::mem::size_of_val(&stack)));
        let clean = [0usize, 17, 42, 0];
        let sp = clean.as_ptr() as usize;
        assert!(!may_hold_lock(0, sp, sp + std::mem::size_of_val(&clean)));
    }
}
