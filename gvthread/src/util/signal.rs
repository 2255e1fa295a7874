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
