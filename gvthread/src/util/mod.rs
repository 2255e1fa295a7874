//! Small internal utilities.

pub(crate) mod clock;
pub(crate) mod fork;
pub(crate) mod futex;
pub(crate) mod lazy_box;
pub(crate) mod rand;
pub(crate) mod signal;
pub(crate) mod slice;
pub(crate) mod thread_timer;

/// Reports an unrecoverable runtime invariant violation and aborts (for paths
/// that must not unwind, such as the GVThread entry frame). Uses only
/// `write(2)` so it is safe anywhere.
pub(crate) fn fatal(msg: &str) -> ! {
    let parts: [&[u8]; 3] = [b"gvthread: fatal: ", msg.as_bytes(), b"\n"];
    for p in parts {
        // SAFETY: writing a valid byte slice to stderr.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
    std::process::abort()
}
