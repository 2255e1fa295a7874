//! OS threads for worker roles: started once, kept for the life of the
//! process, reused by later runtimes instead of exiting.
//!
//! # Why role threads never exit
//!
//! A started GVThread may run on any of its role's threads (its worker
//! thread, and a spare while the worker thread is frozen or blocked in the
//! kernel), one thread at a time. LLVM keeps a `thread_local!`'s address
//! across calls, so a GVThread that touched a thread-local on one thread of
//! its role can reach *that thread's* value after a hand-off moved it to
//! another. Used one at a time that is consistent, except in one place: a
//! value first initialised that way registers its destructor with the thread
//! that ran the initialisation, not the thread that owns the storage. When
//! the threads exit, thread-local destructors then run against another
//! thread's storage, or twice (glibc "double free or corruption" at runtime
//! drop, reproduced by `tests/sound_thread_locals.rs` in release builds beside
//! CPU hogs). Thread-local destructors only ever run when a thread exits,
//! so a role thread does not exit: when its runtime stops, it parks here
//! and a later runtime's role of the same name takes it. Thread-local
//! values on role threads are therefore never dropped (std does not promise
//! that they are: `std::thread::LocalKey`, "Platform-specific behavior").
//!
//! The pool holds at most as many threads per name as were ever running at
//! once under that name. Idle threads sleep in the kernel and show as
//! `gvthread-pooled` in `/proc` and debuggers.
//!
//! Threads are keyed by name so that `std::thread::current().name()` stays
//! true for whoever runs on them (std fixes a thread's name at spawn). After
//! `fork()` the child's pool starts empty: the parent's threads do not exist
//! there (`util::fork`).

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::util::{fork, futex};

/// Work for a role thread: one machine's whole run.
type Job = Box<dyn FnOnce() + Send>;

/// The OS name of a role thread between runtimes.
const IDLE_NAME: &str = "gvthread-pooled";

/// One pooled thread's mailbox.
struct Mailbox {
    job: Mutex<Option<(Job, Arc<Done>)>>,
    arrived: Condvar,
}

/// Set to 1 when a job has returned: the thread no longer touches anything
/// the job's runtime owns. A futex word rather than a lock, so that a
/// forked child dropping a runtime built before the fork cannot find it
/// locked by a thread that stayed in the parent.
#[derive(Default)]
struct Done(AtomicU32);

/// Idle role threads by name, of one process image: a forked child gets a
/// pool of its own (the parent's threads do not exist there, and the
/// parent's pool lock may have been copied held).
struct Pool {
    generation: u32,
    idle: Mutex<HashMap<String, Vec<Arc<Mailbox>>>>,
}

static POOL: AtomicPtr<Pool> = AtomicPtr::new(std::ptr::null_mut());

/// This process image's pool.
fn pool() -> &'static Pool {
    let generation = fork::generation();
    loop {
        let cur = POOL.load(Ordering::Acquire);
        // SAFETY: a published pool is never freed (a replaced one is leaked).
        if let Some(p) = unsafe { cur.as_ref() }
            && p.generation == generation
        {
            return p;
        }
        let fresh = Box::into_raw(Box::new(Pool { generation, idle: Mutex::new(HashMap::new()) }));
        match POOL.compare_exchange(cur, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just published, never freed.
            Ok(_) => return unsafe { &*fresh },
            // SAFETY: `fresh` was never published.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the data anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A role thread's current job, as seen by the runtime that gave it
/// (`std::thread::JoinHandle`'s part that the runtime uses).
pub(crate) struct RoleThread {
    done: Arc<Done>,
}

impl RoleThread {
    /// Whether the job has returned.
    pub(crate) fn is_finished(&self) -> bool {
        self.done.0.load(Ordering::Acquire) != 0
    }

    /// Waits until the job has returned.
    pub(crate) fn join(self) {
        while !self.is_finished() {
            futex::wait(&self.done.0, 0, None);
        }
    }
}

/// Runs `job` on a role thread named `name`: an idle one of that name if
/// the pool has one, else a new OS thread (which joins the pool afterwards).
pub(crate) fn run(name: String, job: impl FnOnce() + Send + 'static) -> std::io::Result<RoleThread> {
    let done = Arc::new(Done::default());
    let job: Job = Box::new(job);
    if let Some(mailbox) = take_idle(&name) {
        *lock(&mailbox.job) = Some((job, done.clone()));
        mailbox.arrived.notify_one();
        return Ok(RoleThread { done });
    }
    let mailbox = Arc::new(Mailbox { job: Mutex::new(Some((job, done.clone()))), arrived: Condvar::new() });
    let key = name.clone();
    std::thread::Builder::new().name(name).spawn(move || serve(key, mailbox))?;
    Ok(RoleThread { done })
}

/// An idle thread named `name`, if any.
fn take_idle(name: &str) -> Option<Arc<Mailbox>> {
    lock(&pool().idle).get_mut(name)?.pop()
}

/// A role thread's whole life: jobs, one after another, parked in between.
fn serve(name: String, mailbox: Arc<Mailbox>) {
    loop {
        let (job, done) = {
            let mut slot = lock(&mailbox.job);
            loop {
                if let Some(j) = slot.take() {
                    break j;
                }
                slot = mailbox.arrived.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        set_os_name(&name);
        // A machine that panicked has already reported it (panic hook); the
        // thread stays in the pool all the same: exiting would run
        // thread-local destructors.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        set_os_name(IDLE_NAME);
        lock(&pool().idle).entry(name.clone()).or_default().push(mailbox.clone());
        done.0.store(1, Ordering::Release);
        futex::wake(&done.0, i32::MAX);
    }
}

/// Sets the calling thread's name as the kernel shows it (15 bytes kept).
fn set_os_name(name: &str) {
    let Ok(c) = CString::new(name.as_bytes().iter().copied().take(15).collect::<Vec<u8>>()) else { return };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // and applies to the calling thread only.
    unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) };
}

/// Idle role threads in the pool (for tests).
#[cfg(test)]
fn idle_count(name: &str) -> usize {
    lock(&pool().idle).get(name).map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid() -> i64 {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() as i64 }
    }

    #[test]
    fn a_finished_job_leaves_its_thread_for_the_next_job_of_the_same_name() {
        let name = "gvthread-test-reuse";
        let (tx, rx) = std::sync::mpsc::channel();
        let t = tx.clone();
        run(name.into(), move || t.send((tid(), std::thread::current().name().map(String::from))).unwrap())
            .unwrap()
            .join();
        assert_eq!(idle_count(name), 1);
        run(name.into(), move || tx.send((tid(), std::thread::current().name().map(String::from))).unwrap())
            .unwrap()
            .join();
        let (a, b) = (rx.recv().unwrap(), rx.recv().unwrap());
        assert_eq!(a, b, "the second job ran on another thread");
        assert_eq!(a.1.as_deref(), Some(name));
    }

    #[test]
    fn busy_threads_are_not_shared_and_other_names_get_their_own() {
        let name = "gvthread-test-busy";
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = run(name.into(), move || release_rx.recv().unwrap()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = tx.clone();
        let second = run(name.into(), move || t.send(tid()).unwrap()).unwrap();
        second.join();
        assert!(!first.is_finished());
        run("gvthread-test-other".into(), move || tx.send(tid()).unwrap()).unwrap().join();
        release_tx.send(()).unwrap();
        first.join();
        let (a, b) = (rx.recv().unwrap(), rx.recv().unwrap());
        assert_ne!(a, b, "a thread was given a job of another name");
        assert_eq!(idle_count(name), 2);
    }

    #[test]
    fn idle_threads_carry_the_pool_name() {
        let name = "gvthread-test-name";
        let (tx, rx) = std::sync::mpsc::channel();
        run(name.into(), move || tx.send(tid()).unwrap()).unwrap().join();
        let tid = rx.recv().unwrap();
        let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
        assert_eq!(comm.trim_end(), IDLE_NAME);
    }
}
