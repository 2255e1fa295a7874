//! Futex wait/wake and a one-token parker built on them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Blocks while `*atom == expected` (or until woken, or `timeout`).
pub(crate) fn wait(atom: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts;
    let ts_ptr = match timeout {
        Some(d) => {
            ts = libc::timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => std::ptr::null(),
    };
    // SAFETY: FUTEX_WAIT only reads `atom`, which is a valid aligned u32 for
    // the duration of the call; `ts_ptr` is null or points at `ts`.
    unsafe {
        libc::syscall(libc::SYS_futex, atom.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, expected, ts_ptr);
    }
}

/// Wakes up to `n` threads blocked in [`wait`] on `atom`.
pub(crate) fn wake(atom: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE does not access memory; `atom` is a valid address.
    unsafe {
        libc::syscall(libc::SYS_futex, atom.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, n);
    }
}

/// The address of the upper 32 bits of a 64-bit word (x86_64 and aarch64
/// are little-endian), used as a futex. Only the kernel reads through it.
fn upper_half(word: &std::sync::atomic::AtomicU64) -> *const u32 {
    word.as_ptr().cast::<u32>().wrapping_add(1).cast_const()
}

/// Blocks while the upper half of `word` equals `expected` (or until woken).
pub(crate) fn wait_word_upper(word: &std::sync::atomic::AtomicU64, expected: u32) {
    // SAFETY: FUTEX_WAIT only reads the aligned 4 bytes at the address, which
    // lie inside `word` and stay valid during the call; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            upper_half(word),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes the threads blocked in [`wait_word_upper`] on `word`.
pub(crate) fn wake_word_upper(word: &std::sync::atomic::AtomicU64) {
    // SAFETY: FUTEX_WAKE does not access memory.
    unsafe {
        libc::syscall(libc::SYS_futex, upper_half(word), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX);
    }
}

const EMPTY: u32 = 0;
const NOTIFIED: u32 = 1;
const PARKED: u32 = u32::MAX;

/// A one-token parker for OS threads (like `std::thread::park`, but owned by a
/// worker role rather than by an OS thread, so whichever thread holds the role
/// can wait on it). Async-signal-safe: no allocation, no locks.
#[derive(Debug, Default)]
pub(crate) struct Parker {
    state: AtomicU32,
}

impl Parker {
    pub(crate) const fn new() -> Parker {
        Parker { state: AtomicU32::new(EMPTY) }
    }

    /// Blocks until [`unpark`](Self::unpark) (or returns at once if a token is
    /// pending), consuming the token. May return spuriously after `timeout`.
    pub(crate) fn park(&self, timeout: Option<Duration>) {
        // NOTIFIED -> EMPTY (consume) or EMPTY -> PARKED.
        if self.state.fetch_sub(1, Ordering::Acquire) == NOTIFIED {
            return;
        }
        loop {
            wait(&self.state, PARKED, timeout);
            if self.state.compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Acquire).is_ok() {
                return;
            }
            if timeout.is_some() {
                // Timed out (or spurious): give up the PARKED state, keeping a
                // token that raced in.
                self.state.swap(EMPTY, Ordering::Acquire);
                return;
            }
        }
    }

    /// Leaves a token and wakes the parked thread, if any.
    pub(crate) fn unpark(&self) {
        if self.state.swap(NOTIFIED, Ordering::Release) == PARKED {
            wake(&self.state, 1);
        }
    }
}
