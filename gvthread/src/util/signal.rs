//! Installing a signal handler once per process while keeping the action it
//! replaced, so that signals (or faults) that are not ours reach it.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

/// The `SA_SIGINFO` handler signature.
pub(crate) type SigInfoHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// One process-wide handler for one signal, chained to the previous action.
pub(crate) struct ChainedHandler {
    prev: UnsafeCell<MaybeUninit<libc::sigaction>>,
    once: Once,
}

// SAFETY: `prev` is written once inside `once.call_once`, before the handler
// that reads it is installed, and only read afterwards.
unsafe impl Sync for ChainedHandler {}

impl ChainedHandler {
    pub(crate) const fn new() -> ChainedHandler {
        ChainedHandler { prev: UnsafeCell::new(MaybeUninit::uninit()), once: Once::new() }
    }

    /// Installs `handler` for `sig` with `SA_SIGINFO | flags`, once per
    /// process, remembering the previous action.
    pub(crate) fn install(&'static self, sig: libc::c_int, handler: SigInfoHandler, flags: libc::c_int) {
        self.once.call_once(|| {
            // SAFETY: plain sigaction calls with valid, initialised
            // structures; `prev` is written before our handler (its only
            // reader) is installed.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | flags;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, ptr::null(), (*self.prev.get()).as_mut_ptr());
                libc::sigaction(sig, &sa, ptr::null_mut());
            }
        });
    }

    /// Passes a signal on to the previous handler, if it was a function.
    /// Returns false (calling nothing) when the previous action was the
    /// default or "ignore": the caller decides what that means for its signal.
    /// Async-signal-safe.
    ///
    /// # Safety
    /// Only from the installed handler, with its own arguments.
    pub(crate) unsafe fn call_previous(
        &self,
        sig: libc::c_int,
        info: *mut libc::siginfo_t,
        ctx: *mut libc::c_void,
    ) -> bool {
        // SAFETY: `prev` was initialised before the handler was installed.
        let prev = unsafe { (*self.prev.get()).assume_init_ref() };
        let h = prev.sa_sigaction;
        if h == libc::SIG_DFL || h == libc::SIG_IGN {
            return false;
        }
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: installed with SA_SIGINFO, so it has this signature.
            let f: SigInfoHandler = unsafe { std::mem::transmute(h) };
            f(sig, info, ctx);
        } else {
            // SAFETY: installed without SA_SIGINFO: a plain handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(h) };
            f(sig);
        }
        true
    }
}

/// Linux's `SI_QUEUE`: the `si_code` of a signal sent with a value.
const SI_QUEUE: libc::c_int = -1;

/// The kernel's `siginfo_t` for a queued signal (its `_rt` member).
#[repr(C)]
struct QueuedInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: usize,
    _rest: [u64; 12],
}

const _: () = {
    assert!(size_of::<QueuedInfo>() == size_of::<libc::siginfo_t>());
    assert!(std::mem::offset_of!(QueuedInfo, code) == 8);
    assert!(std::mem::offset_of!(QueuedInfo, pid) == 16);
    assert!(std::mem::offset_of!(QueuedInfo, value) == 24);
};

/// Sends `sig` to thread `tid` of this process carrying `tag` as its value,
/// so that the handler can tell it from the same signal sent by anyone else
/// (`raise`, `pthread_kill`, the kernel). Returns whether it was queued.
/// Async-signal-safe.
pub(crate) fn send_tagged(tid: libc::pid_t, sig: libc::c_int, tag: usize) -> bool {
    // SAFETY: getpid and getuid have no preconditions.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    let info = QueuedInfo { signo: sig, errno: 0, code: SI_QUEUE, _pad: 0, pid, uid, value: tag, _rest: [0; 12] };
    // SAFETY: rt_tgsigqueueinfo reads a siginfo of the kernel's layout
    // (asserted above) from a valid pointer; `tid` names a thread of this
    // process or no thread (then the call fails with ESRCH).
    unsafe { libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, sig, &info as *const QueuedInfo) == 0 }
}

/// Linux's `SI_TIMER`: the `si_code` of a POSIX timer's signal, whose value
/// sits where a queued signal's does (`_timer.si_sigval`, asserted above via
/// `QueuedInfo::value`: tid and overrun take the place of pid and uid).
const SI_TIMER: libc::c_int = -2;

/// The tag of a signal sent by [`send_tagged`] in this process, or by a
/// kernel timer armed here ([`ThreadTimer`](super::thread_timer::ThreadTimer));
/// `None` for any other signal. Async-signal-safe.
///
/// # Safety
/// `info` is null or the `siginfo_t` the kernel passed to a handler.
pub(crate) unsafe fn tag_of(info: *const libc::siginfo_t) -> Option<usize> {
    if info.is_null() {
        return None;
    }
    // SAFETY: per the contract `info` is a kernel siginfo, and the value is
    // read only after `si_code` says which member is filled in; both members
    // keep the value at the same offset (see `QueuedInfo`).
    unsafe {
        let q = &*info.cast::<QueuedInfo>();
        let ours = match q.code {
            SI_QUEUE => q.pid == libc::getpid(),
            SI_TIMER => true,
            _ => false,
        };
        ours.then_some(q.value)
    }
}
