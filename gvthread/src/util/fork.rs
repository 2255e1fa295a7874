//! Telling a forked child from its parent, cheaply.
//!
//! `fork()` copies only the calling thread. A runtime built before the fork
//! has, in the child, none of its worker, spare, timer or monitor threads:
//! a GVThread that parks there would wait forever for a wake or a worker
//! that no longer exists. A `pthread_atfork` child handler bumps
//! [`generation`]; a runtime remembers the generation it was built in, and
//! its entry points that need other threads (spawning, parking, a yield
//! that must wait for a worker role) fail with a clear message
//! when the two differ. The check is one relaxed load.

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

/// Forks this process image has gone through (0 in the original process).
static FORKS: AtomicU32 = AtomicU32::new(0);

/// Runs in the child, on the forking thread, right after `fork()`.
/// Async-signal-safe (one atomic add).
extern "C" fn in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Installs the `pthread_atfork` handler, once per process.
pub(crate) fn watch() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a plain `extern "C"` function with no
        // preconditions as the child handler.
        unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
    });
}

/// The number of forks between the original process and this one.
#[inline]
pub(crate) fn generation() -> u32 {
    FORKS.load(Ordering::Relaxed)
}

/// What a forked child is told when it uses a runtime built before the fork.
pub(crate) const FORKED_MESSAGE: &str = "this gvthread runtime was built before fork(): in the child process only \
     the forking thread exists, without the runtime's workers and timer, so GVThreads cannot park or be spawned \
     there; build a new Runtime in the child, or call exec";
