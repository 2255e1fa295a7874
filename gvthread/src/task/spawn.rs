//! Spawning: slot, header, spawn payload, first frame; and the entry point
//! every GVThread starts in.

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::header::{HEADER_SIZE, Header};
use super::id::GVThreadId;
use super::join::{JoinError, JoinHandle, JoinState};
use super::local::LocalMap;
use super::priority::Priority;
use super::state;
use crate::arch;
use crate::memory::{AllocError, StackClass};
use crate::runtime::error::SpawnError;
use crate::runtime::shared::Shared;
use crate::sched::machine;
use crate::sched::park::ShutdownUnwind;
use crate::sched::worker::Worker;
use crate::sync::cancel::{CancellationToken, LazyNode};
use crate::util::fatal;

/// Closures larger than this are boxed instead of copied onto the new stack,
/// so the first stack page stays small.
const MAX_INLINE_PAYLOAD: usize = 1024;

/// The token node to be of a GVThread spawned by the caller: a child of the
/// caller's token, or of the runtime's root token outside GVThreads (called
/// inside the spawn's runtime section; a caller's lazy token gets its node
/// here, once).
/// `here`: the caller's machine (`machine::current()`, read in the spawn).
fn child_token(shared: &Shared, here: Option<&machine::Machine>) -> LazyNode {
    match here.map(|m| (m, m.current_slot())) {
        // SAFETY: the running GVThread's header is valid; only it touches its
        // token, and it is running this code.
        Some((m, slot)) if slot != machine::NO_GVTHREAD => match unsafe { &*(*m.shared.header(slot)).token.get() } {
            Some(t) => LazyNode::child_of(t),
            None => LazyNode::child_of(&shared.root_token),
        },
        _ => LazyNode::child_of(&shared.root_token),
    }
}

/// How to spawn: what [`Builder`](crate::Builder) collects.
pub(crate) struct SpawnOptions {
    pub(crate) prio: Priority,
    /// `None`: the runtime's default stack size.
    pub(crate) class: Option<StackClass>,
    pub(crate) name: Option<Box<str>>,
}

/// Spawns `f` as a GVThread of `shared`.
pub(crate) fn spawn_on<F, T>(shared: &Arc<Shared>, prio: Priority, f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_with(shared, SpawnOptions { prio, class: None, name: None }, f)
}

/// Spawns `f` as a GVThread of `shared`, with options.
pub(crate) fn spawn_with<F, T>(shared: &Arc<Shared>, opts: SpawnOptions, f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    let spawned = spawn_here(shared, machine::current(), opts, f);
    after_spawn();
    spawned
}

/// Spawns `f` as a GVThread of the runtime of the calling GVThread (its
/// machine's, read once: no `Arc` clone of the runtime per spawn).
pub(crate) fn spawn_from_gvthread<F, T>(opts: SpawnOptions, f: F) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    let spawned = match machine::current_gvthread() {
        // `m` is not kept past the spawn, which does not switch.
        Some((m, _)) => spawn_here(&m.shared, Some(m), opts, f),
        None => Err(SpawnError::NoRuntime),
    };
    after_spawn();
    spawned
}

/// The spawn proper, in a runtime section (spawning touches the caller's
/// run queue and slot cache: not to be interrupted by a forced
/// preemption); refused in a fork of the process that built the runtime
/// (see `util::fork`). `here`: the caller's machine, read once by the
/// caller (nothing in the section switches).
fn spawn_here<F, T>(
    shared: &Arc<Shared>,
    here: Option<&machine::Machine>,
    opts: SpawnOptions,
    f: F,
) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    if crate::util::fork::generation() != shared.config.fork_generation {
        return Err(SpawnError::Forked);
    }
    machine::in_section_of(here, || {
        if size_of::<F>() > MAX_INLINE_PAYLOAD || align_of::<F>() > 64 {
            let boxed = Box::new(f);
            return spawn_inline(shared, here, opts, boxed);
        }
        spawn_inline(shared, here, opts, f)
    })
}

/// After a spawn, outside its section: a loop that only spawns is inside
/// that section most of the time, where the preemption signal declines to
/// freeze it, so a safepoint here yields instead once the monitor asked
/// (its time slice is used up); and a spawner that filled its run queue
/// helps run it.
fn after_spawn() {
    crate::preempt::safepoint_check();
    crate::sched::park::help_after_spill();
}

/// A slot of `class`: the cache of `role` (the role of `shared` the spawner's
/// machine holds, if any) first, then the pool (lock-free while prepared
/// slots remain). Inside the spawn's runtime section.
fn take_slot(shared: &Shared, class: StackClass, role: Option<&Worker>) -> Result<u32, AllocError> {
    let cached = match role {
        // SAFETY: `spawn_here` runs this inside a runtime section, on the
        // machine holding `role`, whose cache this is.
        Some(w) if class == shared.config.stack_class() => unsafe {
            // Empty: a batch from the depot (slots freed by other roles).
            w.slot_cache.pop().or_else(|| {
                w.slot_cache.refill(&shared.slots.depot);
                w.slot_cache.pop()
            })
        },
        _ => None,
    };
    if let Some(s) = cached {
        if shared.slots.class_of(s) == class {
            return Ok(s);
        }
        // Cached by a GVThread of another class: back to its pool.
        if shared.slots.release(s) {
            shared.timers.parker.unpark();
        }
    }
    let a = shared.slots.allocate(class)?;
    if a.kick {
        // Ask the timer thread to prepare more slots ahead of demand (one
        // futex wake per refill, not per spawn).
        shared.timers.parker.unpark();
    }
    Ok(a.slot)
}

/// Spawns `f`, copying it onto the new GVThread's stack. `here`: the
/// caller's machine, if any (read by `spawn_here`'s caller; this runs in
/// `spawn_here`'s runtime section).
fn spawn_inline<F, T>(
    shared: &Arc<Shared>,
    here: Option<&machine::Machine>,
    opts: SpawnOptions,
    f: F,
) -> Result<JoinHandle<T>, SpawnError>
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    // Counted live before anything else, and checked against shutdown
    // after that (see `runtime::live`): shutdown waits for the count to
    // reach zero before unmapping stacks, so either it sees this spawn or
    // this spawn sees its flag. On a worker of this runtime, from the role's
    // credits (we are in a runtime section: the role stays ours).
    let role = match here {
        Some(m) if std::ptr::eq(&*m.shared, &**shared) && !m.worker_ptr().is_null() => Some(m.worker()),
        _ => None,
    };
    shared.count_spawn(role)?;
    let prio = opts.prio;
    let class = opts.class.unwrap_or_else(|| shared.config.stack_class());
    let slot = match take_slot(shared, class, role) {
        Ok(s) => s,
        Err(AllocError::Os(e)) => {
            shared.uncount_spawn();
            return Err(SpawnError::Memory(e));
        }
    };
    // SAFETY: `role`, if any, is the role this machine holds, and we are in
    // the spawn's runtime section.
    let refs = unsafe { JoinState::<T>::create(child_token(shared, here), role.map(|w| &w.join_blocks)) };
    let token = CancellationToken::lazy(refs.token);
    let st = shared.slots.state(slot);
    let generation = state::generation(st.load(Ordering::Acquire)).wrapping_add(1).max(1);

    let header = shared.header(slot);
    let payload = (header as usize - size_of::<F>()) & !(align_of::<F>().max(arch::STACK_ALIGNMENT) - 1);
    // SAFETY: the slot is ours (allocated above, FREE, nobody runs on it);
    // `payload` lies in its stack below the header and is aligned for F; the
    // initial frame goes below the payload.
    let ctx = unsafe {
        ptr::write(payload as *mut F, f);
        arch::init_stack(payload, entry::<F, T>, payload as *mut u8)
    };
    // SAFETY: as above; the previous occupant's header fields were emptied at
    // its exit, so overwriting without dropping leaks nothing.
    unsafe {
        ptr::write(
            header,
            Header {
                ctx: UnsafeCell::new(ctx),
                token: UnsafeCell::new(Some(token)),
                locals: UnsafeCell::new(LocalMap::default()),
                bound: AtomicPtr::new(ptr::null_mut()),
                no_preempt: std::cell::Cell::new(0),
                wait: super::header::WaitInfo::new(shared.mono_coarse_now()),
                name: UnsafeCell::new(opts.name),
            },
        );
    }
    shared.slots.completion(slot).store(JoinState::into_completion(refs.completion), Ordering::Release);
    // Release: the header, payload and frame are written before anyone can
    // see the slot as runnable.
    let word = state::spawned(generation, prio as u8);
    st.store(word, Ordering::Release);
    shared.ready_word_here(slot, word, here);
    Ok(JoinHandle::new(refs.handle, GVThreadId::new(slot, generation), shared))
}

/// First function run on a GVThread's stack.
///
/// # Safety
/// Only called through the trampoline of a frame made by `spawn_on::<F, T>`,
/// with `arg` pointing at the payload `F` it wrote.
unsafe extern "C" fn entry<F, T>(arg: *mut u8) -> !
where
    F: FnOnce(CancellationToken) -> T + Send + 'static,
    T: Send + 'static,
{
    // Nothing may unwind out of here: there is no frame above to unwind into.
    if machine::current().is_none() {
        fatal("GVThread started outside a worker");
    }
    machine::resumed();
    // SAFETY: `arg` points at the payload written by `spawn_on`, read once.
    let f = unsafe { ptr::read(arg as *mut F) };
    let Some((m, slot)) = machine::current_gvthread() else { fatal("GVThread lost its worker") };
    // SAFETY: our own header; the token is set at spawn and taken only at exit.
    let token = unsafe { (*(*m.shared.header(slot)).token.get()).clone() }.unwrap_or_default();
    let result = catch_unwind(AssertUnwindSafe(move || f(token)));
    finish::<T>(result.map_err(|payload| {
        if payload.is::<ShutdownUnwind>() {
            JoinError::cancelled()
        } else {
            let Some((m, slot)) = machine::current_gvthread() else { fatal("GVThread lost its worker") };
            // SAFETY: our own header; only we touch the name.
            let name = unsafe { (*(*m.shared.header(slot)).name.get()).as_deref().map(str::to_owned) };
            JoinError::panic_named(payload, name)
        }
    }))
}

/// Tears the GVThread down, completes its join, and exits.
fn finish<T: Send + 'static>(result: Result<T, JoinError>) -> ! {
    // GVThread-locals and the token first: their destructors are user code
    // that may block (so re-fetch the machine after) or panic.
    let teardown = catch_unwind(|| {
        let Some((m, slot)) = machine::current_gvthread() else { fatal("GVThread lost its worker") };
        let header = m.shared.header(slot);
        // SAFETY: our own header; nothing else touches these fields.
        unsafe {
            LocalMap::clear((*header).locals.get());
            drop((*(*header).token.get()).take());
            drop((*(*header).name.get()).take());
        }
    });
    if teardown.is_err() {
        fatal("a GVThread-local destructor panicked");
    }
    let Some((m, slot)) = machine::current_gvthread() else { fatal("GVThread lost its worker") };
    let completion = m.shared.slots.completion(slot).swap(ptr::null_mut(), Ordering::AcqRel);
    // Dropping the result or the last join reference runs user Drop code.
    let done = catch_unwind(AssertUnwindSafe(move || {
        if completion.is_null() {
            // Abandoned at shutdown: nobody will take the result.
            drop(result);
        } else {
            // SAFETY: swapped out of the pool just now, so we own it.
            let join = unsafe { JoinState::<T>::from_completion(completion) };
            JoinState::complete(join, result, true);
        }
    }));
    if done.is_err() {
        fatal("dropping a GVThread's result panicked");
    }
    let Some((m, slot)) = machine::current_gvthread() else { fatal("GVThread lost its worker") };
    machine::exit_gvthread(m, slot)
}

const _: () = assert!(HEADER_SIZE + MAX_INLINE_PAYLOAD + 512 <= 4096 * 2);
