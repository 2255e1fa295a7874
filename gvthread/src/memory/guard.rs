//! Stack overflow detection: a process-wide `SIGSEGV` handler that recognises
//! faults in the guard page of any GVThread slot, says which GVThread
//! overflowed, and aborts.
//!
//! # Protocol
//!
//! * **Registry.** Every [`SlotPool`](super::SlotPool) registers its chunk
//!   table in a global, append-only list of [`Node`]s when it is created and
//!   clears its node when it is dropped, with a compare-and-swap on its own
//!   table pointer, so a late second unregistration never clears a node
//!   that a later pool reused. Nodes are never freed (a dropped
//!   pool's node is reused by the next pool), so the handler can walk the list
//!   without locks and without ever touching freed memory; only the table a
//!   node points to comes and goes.
//! * **Handler vs. drop.** A handler announces itself in [`ACTIVE`] before it
//!   reads any table; [`Registration::unregister`] clears the node and then
//!   waits until [`ACTIVE`] is zero before the pool frees its chunks. Both
//!   sides use `SeqCst`, so either the handler sees the cleared node, or the
//!   dropper sees the handler and waits for it (the handler never blocks, so
//!   the wait is short).
//! * **Handler.** Runs on the signal stack (`SA_ONSTACK`: the overflowed stack
//!   is unusable). If the fault was raised by the kernel (`si_code > 0`) at an
//!   address inside the guard page of a slot of a registered pool, it writes
//!   `gvthread: stack overflow in GVThread <slot>.<generation> 'name' (16 MiB
//!   stack)` (the name when the GVThread has one, the size of its class)
//!   to standard error with `write(2)` (digits formatted by hand: no
//!   allocation, no locks, no `fmt`) and aborts. Otherwise the fault is not
//!   ours and is passed on (see [`chain`]).
//! * **Signal stacks.** Threads started by `std::thread` get an alternate
//!   signal stack from std whenever std installed its own `SIGSEGV` handler at
//!   start-up (the usual case for a Rust `main`). Machine threads call
//!   [`ensure_altstack`] first thing, which installs one only if the thread has
//!   none (for example when a C host or a sanitizer owned `SIGSEGV` before
//!   Rust's start-up code ran, in which case std skips it).
//!
//! # Why a fault cannot skip the guard page
//!
//! The guard is one 4 KiB page at the bottom of each slot, directly above the
//! previous slot's top page. A frame smaller than a page cannot move the stack
//! pointer past the guard without touching it. A frame of a page or more is
//! probed: rustc enables inline stack probes on x86_64 and aarch64 Linux
//! (LLVM's inline probestack; on aarch64 a loop that moves `sp` down one
//! 4 KiB page at a time and stores at each step), which touch every page of
//! the new frame from the top down before it is used, so the first touch
//! below the stack lands in the guard page, never in the neighbouring slot. (Code compiled without probes, such as C with a
//! huge `alloca` and no `-fstack-clash-protection`, can still jump over it.)

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use super::slots::ChunkTable;
use super::{GUARD_SIZE, SLOTS_PER_CHUNK};
use crate::util::signal::ChainedHandler;

/// One registry entry: the chunk table of one pool, or null when free.
struct Node {
    table: AtomicPtr<ChunkTable>,
    /// Immutable once the node is published.
    next: *const Node,
}

/// Head of the registry list (nodes are pushed at the head, never removed).
static HEAD: AtomicPtr<Node> = AtomicPtr::new(ptr::null_mut());
/// Handlers currently reading pool tables.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// A pool's entry in the registry: the node it took and the table it put
/// there.
pub(crate) struct Registration {
    node: &'static Node,
    table: *mut ChunkTable,
}

// SAFETY: the table pointer is only compared, never dereferenced, through a
// Registration.
unsafe impl Send for Registration {}
// SAFETY: as above.
unsafe impl Sync for Registration {}

/// Registers `table` so that overflows in its slots are reported. The table
/// must stay valid until [`Registration::unregister`] returns (or forever).
pub(super) fn register(table: *const ChunkTable) -> Registration {
    install();
    let table = table as *mut ChunkTable;
    // Reuse a free node if there is one.
    let mut p = HEAD.load(Ordering::Acquire);
    while !p.is_null() {
        // SAFETY: nodes are leaked, never freed; `next` is immutable.
        let node: &'static Node = unsafe { &*p };
        if node.table.compare_exchange(ptr::null_mut(), table, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
            return Registration { node, table };
        }
        p = node.next as *mut Node;
    }
    let node: &'static mut Node = Box::leak(Box::new(Node { table: AtomicPtr::new(table), next: ptr::null() }));
    let mut head = HEAD.load(Ordering::Acquire);
    loop {
        node.next = head;
        // Release: `next` and `table` are visible to whoever sees the node.
        match HEAD.compare_exchange_weak(head, node, Ordering::SeqCst, Ordering::Acquire) {
            Ok(_) => return Registration { node, table },
            Err(h) => head = h,
        }
    }
}

impl Registration {
    /// Removes the pool from the registry and waits until no handler can
    /// still be reading its table. Idempotent, and exact: it clears the node
    /// only while the node still holds *this* pool's table (a
    /// compare-and-swap), so a pool unregistered once (at shutdown) and again
    /// when dropped never clears the entry of a later pool that reused the
    /// node meanwhile. The table pointer cannot be reused by another pool
    /// before this one is dropped (it is this pool's live allocation).
    pub(super) fn unregister(&self) {
        // SeqCst (with the handler's SeqCst increment of ACTIVE and load of
        // the node): either the handler sees null or we see it active.
        let _ = self.node.table.compare_exchange(self.table, ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst);
        while ACTIVE.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
    }

    /// Whether this registration is still in the registry.
    #[cfg(test)]
    pub(super) fn is_registered(&self) -> bool {
        self.node.table.load(Ordering::SeqCst) == self.table
    }
}

static HANDLER: ChainedHandler = ChainedHandler::new();

/// Installs the `SIGSEGV` handler once per process, remembering the previous
/// action (usually std's, which reports overflows of OS thread stacks) so
/// faults that are not ours reach it.
pub(super) fn install() {
    HANDLER.install(libc::SIGSEGV, handler, libc::SA_ONSTACK);
}

/// What the handler reports about an overflowing slot.
struct Overflow {
    slot: u32,
    generation: u32,
    slot_size: usize,
    /// The GVThread's name (bytes in its header), if it has one.
    name: Option<&'static [u8]>,
}

/// Finds the registered slot whose guard page holds `addr`.
///
/// # Safety
/// The caller has announced itself in [`ACTIVE`].
unsafe fn find_guard(addr: usize) -> Option<Overflow> {
    let mut p = HEAD.load(Ordering::SeqCst);
    while !p.is_null() {
        // SAFETY: nodes are never freed.
        let node = unsafe { &*p };
        let table = node.table.load(Ordering::SeqCst);
        if !table.is_null() {
            // SAFETY: a registered table stays valid while ACTIVE > 0 (see
            // `unregister`).
            let table = unsafe { &*table };
            for (index, c) in table.reserved().iter().enumerate() {
                let c = c.load(Ordering::Acquire);
                if c.is_null() {
                    continue;
                }
                // SAFETY: chunks live as long as their table.
                let chunk = unsafe { &*c };
                let base = chunk.base as usize;
                let slot_size = chunk.slot_size;
                if addr < base || addr - base >= slot_size * SLOTS_PER_CHUNK {
                    continue;
                }
                let within = (addr - base) % slot_size;
                if within >= GUARD_SIZE {
                    return None; // in a slot, but not in its guard page
                }
                let k = (addr - base) / slot_size;
                let word = chunk.state_at(k).load(Ordering::Relaxed);
                let slot = (index * SLOTS_PER_CHUNK + k) as u32;
                let name = if crate::task::state::kind(word) == crate::task::state::FREE {
                    None
                } else {
                    // SAFETY: the slot is in use (its state word says so), so
                    // its header was written at spawn and is mapped.
                    unsafe { crate::task::header::name_at_top(chunk.slot_top(k)) }
                };
                return Some(Overflow { slot, generation: crate::task::state::generation(word), slot_size, name });
            }
        }
        p = node.next as *mut Node;
    }
    None
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo (SA_SIGINFO). Only faults the
    // kernel raised (si_code > 0) carry a meaningful address; a SIGSEGV sent
    // with kill(2) is never ours.
    let addr = unsafe { if (*info).si_code > 0 { Some((*info).si_addr() as usize) } else { None } };
    if let Some(addr) = addr {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        // SAFETY: announced in ACTIVE just above.
        let hit = unsafe { find_guard(addr) };
        if let Some(o) = hit {
            report_and_abort(&o);
        }
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
    // SAFETY: forwarding the handler's own arguments.
    unsafe { chain(sig, info, ctx) };
}

/// Passes a fault that is not ours on.
///
/// * The previous action is a handler (std's, or a JIT's, a sanitizer's...):
///   call it directly with the same arguments. It sees exactly what it would
///   have seen without us; when it returns, so do we, and the faulting
///   instruction re-executes (std's handler, for a fault outside its own guard
///   pages, resets `SIGSEGV` to the default action before returning, so the
///   re-executed fault then kills the process as usual). Calling rather than
///   re-installing keeps our handler in place for handlers that resolve the
///   fault and let the program go on.
/// * The previous action is the default (or "ignore", which is meaningless
///   for a real fault and would loop forever): restore the default action and
///   return. The faulting instruction re-executes and the kernel applies the
///   default action to the original fault, so the process dies of `SIGSEGV`
///   exactly as it would have without us (status 139, core dump rules, the
///   original `si_addr`), instead of us re-raising a synthetic signal.
///
/// # Safety
/// Only from [`handler`], with its arguments.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: forwarding the handler's own arguments.
    if !unsafe { HANDLER.call_previous(sig, info, ctx) } {
        // SAFETY: sigaction is async-signal-safe; the structure is valid.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(sig, &dfl, ptr::null_mut());
        }
    }
}

/// Appends the decimal digits of `n` to `buf` at `*len`.
fn push_u32(buf: &mut [u8], len: &mut usize, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push(buf, len, &digits[i..]);
}

fn push(buf: &mut [u8], len: &mut usize, bytes: &[u8]) {
    let n = bytes.len().min(buf.len() - *len);
    buf[*len..*len + n].copy_from_slice(&bytes[..n]);
    *len += n;
}

/// Longest part of a name the report prints.
const MAX_NAME: usize = 96;

/// Formats the overflow message into `buf`; returns its length.
fn overflow_message(buf: &mut [u8; 256], o: &Overflow) -> usize {
    let mut len = 0;
    push(buf, &mut len, b"gvthread: stack overflow in GVThread ");
    push_u32(buf, &mut len, o.slot);
    push(buf, &mut len, b".");
    push_u32(buf, &mut len, o.generation);
    if let Some(name) = o.name {
        push(buf, &mut len, b" '");
        push(buf, &mut len, &name[..name.len().min(MAX_NAME)]);
        push(buf, &mut len, b"'");
    }
    push(buf, &mut len, b" (");
    if o.slot_size >= 1 << 20 {
        push_u32(buf, &mut len, (o.slot_size >> 20) as u32);
        push(buf, &mut len, b" MiB stack)\n");
    } else {
        push_u32(buf, &mut len, (o.slot_size >> 10) as u32);
        push(buf, &mut len, b" KiB stack)\n");
    }
    len
}

/// Writes the overflow message with `write(2)` and aborts.
fn report_and_abort(o: &Overflow) -> ! {
    let mut buf = [0u8; 256];
    let len = overflow_message(&mut buf, o);
    let mut done = 0;
    while done < len {
        // SAFETY: writing initialised bytes of a local buffer to stderr.
        let n = unsafe { libc::write(2, buf[done..].as_ptr().cast(), len - done) };
        if n > 0 {
            done += n as usize;
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            break;
        }
    }
    // SAFETY: abort(3) is async-signal-safe.
    unsafe { libc::abort() }
}

/// `errno` of this thread (async-signal-safe, unlike anything that formats).
fn errno() -> libc::c_int {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Bytes of the alternate signal stacks this module installs (beyond the
/// kernel's minimum for this CPU, which grows with AVX-512/AMX state).
const ALTSTACK_SIZE: usize = 64 * 1024;

/// An alternate signal stack installed by [`ensure_altstack`], removed and
/// unmapped when its thread exits.
struct AltStack {
    base: Cell<*mut u8>,
    len: Cell<usize>,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let base = self.base.get();
        if base.is_null() {
            return;
        }
        // SAFETY: this thread is exiting and not in a signal handler; the
        // stack is disabled before it is unmapped.
        unsafe {
            let mut off: libc::stack_t = std::mem::zeroed();
            off.ss_flags = libc::SS_DISABLE;
            libc::sigaltstack(&off, ptr::null_mut());
            libc::munmap(base.cast(), self.len.get());
        }
    }
}

thread_local! {
    static ALTSTACK: AltStack = const { AltStack { base: Cell::new(ptr::null_mut()), len: Cell::new(0) } };
}

/// Makes sure the calling thread has an alternate signal stack, so the
/// overflow handler can run when the stack it interrupted is exhausted. A
/// no-op on threads that have one (every `std::thread` when std installed its
/// own overflow handler at start-up). Called first thing on machine threads.
pub(crate) fn ensure_altstack() {
    // SAFETY: querying the current alternate stack into a local.
    let enabled = unsafe {
        let mut cur: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(ptr::null(), &mut cur) == 0 && cur.ss_flags & libc::SS_DISABLE == 0
    };
    if enabled {
        return;
    }
    // SAFETY: getauxval has no preconditions (0 when the entry is absent).
    let min = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    let size = (ALTSTACK_SIZE + min).next_multiple_of(super::PAGE_SIZE);
    let len = size + super::PAGE_SIZE;
    let Ok(base) = super::os::reserve(len, super::PAGE_SIZE, 0) else { return };
    // The lowest page guards the signal stack itself, with the scheme the
    // probe proved (a marker that "succeeds" without faulting, as under
    // qemu-user, would be no guard).
    // SAFETY: `base` is a fresh mapping of `len` bytes owned here.
    let guarded = unsafe {
        super::os::install_guard(super::os::probe_guard_scheme(), base, super::PAGE_SIZE).is_ok()
            || super::os::install_guard(super::GuardScheme::Mprotect, base, super::PAGE_SIZE).is_ok()
    };
    let _ = guarded; // an unguarded signal stack still works
    // SAFETY: the stack lies in a mapping this thread owns until exit.
    let ok = unsafe {
        let st = libc::stack_t { ss_sp: base.add(super::PAGE_SIZE).cast(), ss_flags: 0, ss_size: size };
        libc::sigaltstack(&st, ptr::null_mut()) == 0
    };
    if !ok {
        // SAFETY: not installed, so nothing refers to it.
        unsafe { super::os::unreserve(base, len) };
        return;
    }
    ALTSTACK.with(|a| {
        a.base.set(base);
        a.len.set(len);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_digits() {
        let mut buf = [0u8; 256];
        let o = Overflow { slot: 1_234_567, generation: 4_294_967_295, slot_size: 16 << 20, name: None };
        let n = overflow_message(&mut buf, &o);
        assert_eq!(&buf[..n], b"gvthread: stack overflow in GVThread 1234567.4294967295 (16 MiB stack)\n");
        let o = Overflow { slot: 0, generation: 1, slot_size: 256 << 10, name: Some(b"parser") };
        let n = overflow_message(&mut buf, &o);
        assert_eq!(&buf[..n], b"gvthread: stack overflow in GVThread 0.1 'parser' (256 KiB stack)\n");
    }

    #[test]
    fn unregister_is_exact() {
        // Pool A registers, unregisters (shutdown); pool B reuses the node;
        // A unregisters again (drop): B must stay registered.
        let (ta, tb) = (Box::new(ChunkTable::new(0)), Box::new(ChunkTable::new(0)));
        let a = register(&*ta);
        a.unregister();
        let b = register(&*tb);
        a.unregister();
        assert!(b.is_registered(), "a stale unregistration cleared another pool's entry");
        b.unregister();
        assert!(!b.is_registered());
    }

    fn altstack_enabled() -> bool {
        // SAFETY: querying into a local.
        unsafe {
            let mut cur: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(ptr::null(), &mut cur) == 0 && cur.ss_flags & libc::SS_DISABLE == 0
        }
    }

    #[test]
    fn altstack_installed_when_missing() {
        std::thread::spawn(|| {
            // SAFETY: disabling this thread's signal stack (std's stays
            // mapped and is freed by std at thread exit); no handler runs
            // here meanwhile.
            unsafe {
                let mut off: libc::stack_t = std::mem::zeroed();
                off.ss_flags = libc::SS_DISABLE;
                libc::sigaltstack(&off, ptr::null_mut());
            }
            assert!(!altstack_enabled());
            ensure_altstack();
            assert!(altstack_enabled());
            ALTSTACK.with(|a| assert!(!a.base.get().is_null()));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn std_threads_have_an_altstack() {
        // Threads that run GVThreads are std threads: std gives them a signal
        // stack (ensure_altstack is then a no-op), which the handler needs.
        std::thread::spawn(|| {
            assert!(altstack_enabled());
            ensure_altstack();
            ALTSTACK.with(|a| assert!(a.base.get().is_null(), "std's stack is kept"));
        })
        .join()
        .unwrap();
    }
}
