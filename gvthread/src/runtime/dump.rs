//! `Handle::dump`: every live GVThread, what it waits on, and where.
//!
//! # What is read, and why it is safe
//!
//! For each slot in use the dump reads the state word (kind, generation,
//! priority), the header's `bound` pointer (frozen by forced preemption)
//! and its [`WaitInfo`](crate::task::header::WaitInfo): where the GVThread
//! called `park` and since when. Those are atomics; for a GVThread that
//! runs meanwhile they are only a hint, printed as such.
//!
//! A parked GVThread's stack is also unwound (see `debug::unwind`). Reading
//! a stack while its GVThread could be woken and resumed would race with it,
//! so the dump first *claims* the GVThread: a compare-and-swap of its state
//! word from `PARKED` to `ACTIVE` (same generation), exactly what a waker
//! does, but without queueing it. An `ACTIVE` GVThread that is in no queue
//! is run by nobody, so its stack is frozen while the dump reads it; a wake
//! arriving meanwhile finds it `ACTIVE` and sets `NOTIFIED`, as for a
//! running GVThread. The dump then *releases* it: back to `PARKED`, and if
//! `NOTIFIED` was set meanwhile, it passes that wake on through
//! `Shared::wake`, the one wake path. No wake is lost; at worst (another
//! wake landing between the release and the passed-on wake) the GVThread
//! sees one spurious wake-up, which `park` allows anyway. Claim, unwind and release run in
//! one runtime section (no forced preemption can freeze the dump while it
//! holds a GVThread), and allocate nothing: the unwinder's scratch space
//! and the loaded objects' tables are gathered before. Symbols are looked up
//! afterwards, from the return addresses alone.
//!
//! The wake path is untouched: wakers still never block, allocate or lock.
//!
//! # The opt-in signal
//!
//! With [`SchedulerConfig::dump_on_sigquit`](crate::SchedulerConfig::dump_on_sigquit),
//! `SIGQUIT` (Ctrl-\\) prints the dump to standard error. The handler only
//! bumps two counters and wakes a futex (async-signal-safe); a normal thread
//! per runtime, `gvthread-dump`, waits on that futex and does the dump and
//! the printing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle as ThreadHandle;

use super::shared::Shared;
use crate::debug::unwind::{self, Modules, Unwinder};
use crate::memory::GUARD_SIZE;
use crate::sched::machine;
use crate::task::header::HEADER_SIZE;
use crate::task::priority::Priority;
use crate::task::state::{self, ACTIVE, BLOCKED, FREE, NOTIFIED, PARKED};
use crate::util::futex;
use crate::util::signal::ChainedHandler;

/// Most frames unwound per GVThread.
const MAX_FRAMES: usize = 64;

/// What one GVThread was doing.
struct Entry {
    slot: u32,
    generation: u32,
    priority: Priority,
    /// The worker role it is bound to once started.
    home: Option<usize>,
    state: String,
    /// Nanoseconds in that state (coarse clock), if known.
    for_nanos: Option<u64>,
    frames: Vec<usize>,
}

/// Builds the dump of `shared`'s GVThreads (see the module docs).
///
/// Called from a GVThread, the work is done on an `unblock` pool thread while
/// the GVThread parks: reading debug information and walking the loader's
/// list take locks (the loader's, the symbolizer's) that a GVThread must not
/// be frozen holding by a forced preemption, and take long enough to hold up
/// its worker. The caller then appears parked, with its own backtrace.
pub(crate) fn dump(shared: &Arc<Shared>) -> String {
    let caller = machine::current_gvthread()
        .filter(|(m, _)| Arc::ptr_eq(&m.shared, shared))
        .map(|(m, slot)| (slot, state::generation(m.shared.slots.state(slot).load(Ordering::Relaxed))));
    if machine::current_gvthread().is_some() {
        let shared = shared.clone();
        return crate::future::unblock(move || dump_on_this_thread(&shared, caller));
    }
    dump_on_this_thread(shared, caller)
}

/// The dump, built on a thread that runs no GVThread; `caller` is the
/// GVThread that asked for it, if any.
fn dump_on_this_thread(shared: &Shared, caller: Option<(u32, u32)>) -> String {
    debug_assert!(machine::current_gvthread().is_none());
    if let Some((slot, generation)) = caller {
        // The caller parks right after handing the dump to this thread; wait
        // for that (briefly, bounded), so that its own stack is in the dump
        // rather than a "running" line (seen under emulation, where this
        // thread can get here first).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < deadline {
            let word = shared.slots.state(slot).load(Ordering::Acquire);
            if state::kind(word) != state::ACTIVE || state::generation(word) != generation {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
    let modules = Modules::loaded();
    let mut unwinder = Unwinder::new();
    let mut entries = Vec::new();
    let now = crate::util::clock::coarse_nanos();
    // Once stopped, stacks may be unmapped: list nothing but the count.
    let stopped = shared.is_stopped();
    for slot in 0..if stopped { 0 } else { shared.slots.used() } {
        let word = shared.slots.state(slot).load(Ordering::Acquire);
        if state::kind(word) == FREE {
            continue;
        }
        let mut frames = Vec::new();
        // SAFETY: the header of a slot in use lies in mapped memory (headers
        // stay mapped while the runtime runs); `bound` and `wait` are atomics.
        let header = unsafe { &*shared.header(slot) };
        // A compacted stack (memory/compact.rs) is not read: its header and
        // frames are in a buffer, and touching the slot would map pages.
        let compacted = word & (state::COMPACTING | state::COMPACTED) != 0;
        let parked = if state::kind(word) == PARKED && !compacted {
            // Room for the walk, made before the GVThread is held (the walk
            // itself allocates nothing); trimmed after.
            frames.reserve_exact(MAX_FRAMES);
            let read = inspect_parked(shared, slot, word, &modules, &mut unwinder, &mut frames);
            frames.shrink_to_fit();
            read
        } else {
            None
        };
        let claimed = parked.is_some();
        let generation = state::generation(word);
        // For a parked GVThread, what was read while it was held; otherwise a hint.
        let (site, since, deadline) =
            parked.unwrap_or_else(|| if compacted { (None, 0, 0) } else { header.wait.read() });
        // `since` dates the last park (or the spawn): a duration only for
        // GVThreads that are in that park now.
        let for_nanos = (since != 0 && site.is_some()).then(|| now.saturating_sub(since));
        let reason = site.map(|s| describe_site(s, deadline, now));
        let state = if caller == Some((slot, generation)) {
            "running (called dump, parked until it returns)".to_string()
        } else if compacted {
            "parked or just woken (stack compacted)".to_string()
        } else if claimed {
            format!("parked on {}", reason.unwrap_or_else(|| "?".into()))
        } else if state::kind(word) == PARKED {
            // Woken between the load and the claim.
            "runnable (just woken)".to_string()
        } else if state::kind(word) == BLOCKED {
            // Parked while unwinding: its OS thread itself waits (see `sched::park`).
            format!("blocked while unwinding, its OS thread waiting (on {})", reason.unwrap_or_else(|| "?".into()))
        } else if !header.bound.load(Ordering::Acquire).is_null() {
            "preempted (frozen by a forced preemption, waiting for a worker)".to_string()
        } else if let Some(r) = reason {
            format!("runnable or parking (at {r})")
        } else {
            "running or runnable".to_string()
        };
        entries.push(Entry {
            slot,
            generation,
            priority: Priority::from_u8(state::priority(word)),
            home: state::home(word),
            state,
            for_nanos,
            frames,
        });
    }
    format_dump(shared, &entries)
}

/// What a parked GVThread's `WaitInfo` said while it was held.
type WaitRead = (Option<&'static std::panic::Location<'static>>, u64, u64);

/// Claims the parked GVThread `slot` (state `word`), reads its wait info,
/// unwinds its stack into `frames`, and releases it. Returns `None` if it
/// was woken first. Allocates nothing.
fn inspect_parked(
    shared: &Shared,
    slot: u32,
    word: u64,
    modules: &Modules,
    unwinder: &mut Unwinder,
    frames: &mut Vec<usize>,
) -> Option<WaitRead> {
    let st = shared.slots.state(slot);
    // Acquire: pairs with the Release of `finish_park`, so the saved context
    // and the stack below it are visible.
    if st.compare_exchange(word, state::with_kind(word, ACTIVE), Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return None;
    }
    // SAFETY: as in `dump`; held, so its wait info is stable.
    let wait = unsafe { (*shared.header(slot)).wait.read() };
    let stack_lo = shared.slots.base(slot) as usize + GUARD_SIZE;
    let stack_hi = shared.slots.top(slot) as usize - HEADER_SIZE;
    // SAFETY: we hold the GVThread out of every queue (ACTIVE, queued by
    // nobody): its context and stack stay as it left them until we release
    // it below.
    let start = unsafe { crate::arch::suspended_regs(&*shared.context_of(slot)) };
    unwind::unwind(modules, unwinder, start, stack_lo, stack_hi, frames);
    release(shared, slot);
    Some(wait)
}

/// Gives a claimed GVThread back: parked again and, if a wake came in
/// meanwhile (`NOTIFIED`), woken through the one wake path
/// (`Shared::wake`), so it is queued exactly as any woken GVThread is.
fn release(shared: &Shared, slot: u32) {
    let st = shared.slots.state(slot);
    let mut cur = st.load(Ordering::Acquire);
    loop {
        let new = state::with_kind(cur & !NOTIFIED, PARKED);
        // Release: our reads of the stack happen before whoever resumes it
        // (a waker's Acquire on this word).
        match st.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(c) => cur = c,
        }
    }
    if cur & NOTIFIED != 0 {
        shared.wake(slot, state::generation(cur));
    }
}

/// What a `park` call site means, from the file it is in.
fn describe_site(site: &std::panic::Location<'static>, deadline: u64, now: u64) -> String {
    let file = site.file().replace('\\', "/");
    let what = if file.contains("src/sync/chan") {
        "channel"
    } else if file.contains("src/sync/mutex") {
        "mutex"
    } else if file.contains("src/task/join") {
        "join"
    } else if file.contains("src/sched/park") {
        "sleep"
    } else if file.contains("src/future/unblock") {
        "unblock"
    } else if file.contains("src/future/") {
        "future"
    } else {
        "park"
    };
    let mut s = format!("{what} [{}:{}]", short_path(&file), site.line());
    if deadline != 0 {
        let left = deadline.saturating_sub(now);
        let _ = write!(s, " until +{}", millis(left));
    }
    s
}

/// `…/gvthread/src/x.rs` → `gvthread/src/x.rs` (registry and git checkouts
/// give absolute paths).
fn short_path(file: &str) -> &str {
    match file.rfind("gvthread/src/") {
        Some(i) => &file[i..],
        None => file,
    }
}

fn millis(nanos: u64) -> String {
    format!("{}.{:03} s", nanos / 1_000_000_000, (nanos / 1_000_000) % 1000)
}

/// The name given at spawn, if any. Hook for named GVThreads (a `Builder`
/// with `name`): none carry a name yet, so the id alone identifies them.
fn name_of(_shared: &Shared, _slot: u32) -> Option<String> {
    None
}

fn format_dump(shared: &Shared, entries: &[Entry]) -> String {
    let mut out = String::new();
    let mut symbols: HashMap<usize, Vec<String>> = HashMap::new();
    let _ = writeln!(
        out,
        "gvthread dump: {} live GVThread(s), {} worker role(s), {} OS thread(s)",
        shared.live_count(),
        shared.workers.len(),
        shared.machine_count(),
    );
    for e in entries {
        let _ = write!(out, "\ngvthread-{}.{}", e.slot, e.generation);
        if let Some(name) = name_of(shared, e.slot) {
            let _ = write!(out, " \"{name}\"");
        }
        match e.home {
            Some(h) => {
                let _ = write!(out, " [{:?}, worker {h}] {}", e.priority, e.state);
            }
            None => {
                let _ = write!(out, " [{:?}, not started] {}", e.priority, e.state);
            }
        }
        if let Some(n) = e.for_nanos {
            let _ = write!(out, ", for {}", millis(n));
        }
        out.push('\n');
        for (i, &pc) in e.frames.iter().enumerate() {
            let lines = symbols.entry(pc).or_insert_with(|| symbolize(pc));
            for line in lines.iter() {
                let _ = writeln!(out, "  {i:2}: {line}");
            }
        }
    }
    out
}

/// The lines for return address `pc`: one per function (inlined ones too),
/// with file:line. Many GVThreads share frames, so callers cache this.
fn symbolize(pc: usize) -> Vec<String> {
    let mut lines = Vec::new();
    // A return address points after the call: look up the call itself.
    backtrace::resolve((pc - 1) as *mut std::ffi::c_void, |sym| {
        let mut line = sym.name().map(|n| format!("{n:#}")).unwrap_or_else(|| "<unknown>".into());
        if let (Some(file), Some(n)) = (sym.filename(), sym.lineno()) {
            let _ = write!(line, "\n        at {}:{n}", file.display());
        }
        lines.push(line);
    });
    if lines.is_empty() {
        lines.push(format!("{pc:#x}"));
    }
    lines
}

// ---- the opt-in SIGQUIT dump ----

/// Bumped by every SIGQUIT.
static SIGNALS: AtomicU32 = AtomicU32::new(0);
/// Futex word the dump threads wait on: bumped by SIGQUIT and by shutdowns.
static SEQ: AtomicU32 = AtomicU32::new(0);
static HANDLER: ChainedHandler = ChainedHandler::new();

/// Async-signal-safe: atomics and a futex wake only.
extern "C" fn on_sigquit(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    SIGNALS.fetch_add(1, Ordering::AcqRel);
    SEQ.fetch_add(1, Ordering::AcqRel);
    futex::wake(&SEQ, i32::MAX);
}

/// The `gvthread-dump` thread of one runtime.
pub(crate) struct SignalDumper {
    stop: Arc<AtomicBool>,
    thread: Option<ThreadHandle<()>>,
}

impl SignalDumper {
    /// Installs the SIGQUIT handler (once per process) and starts the thread
    /// that prints `shared`'s dump on each signal.
    pub(crate) fn start(shared: &Arc<Shared>) -> std::io::Result<SignalDumper> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("gvthread-dump".into()).spawn(move || {
            let mut seen = SIGNALS.load(Ordering::Acquire);
            loop {
                let seq = SEQ.load(Ordering::Acquire);
                if flag.load(Ordering::Acquire) {
                    return;
                }
                let signals = SIGNALS.load(Ordering::Acquire);
                if signals != seen {
                    seen = signals;
                    if let Some(shared) = weak.upgrade() {
                        let text = dump(&shared);
                        drop(shared);
                        use std::io::Write as _;
                        let _ = std::io::stderr().lock().write_all(text.as_bytes());
                    }
                    continue;
                }
                futex::wait(&SEQ, seq, None);
            }
        })?;
        HANDLER.install(libc::SIGQUIT, on_sigquit, libc::SA_RESTART);
        Ok(SignalDumper { stop, thread: Some(thread) })
    }

    /// Stops and joins the thread (the handler stays installed; with no
    /// dump thread left it does nothing visible).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        SEQ.fetch_add(1, Ordering::AcqRel);
        futex::wake(&SEQ, i32::MAX);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
