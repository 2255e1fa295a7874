//! Finishing a blocked system call without the worker role (Go's syscall
//! hand-off, done from the preemption handler).
//!
//! When the handler finds its thread blocked in the kernel, the GVThread is
//! not using the CPU, and the role should go on running others. Freezing it
//! and resuming it in turn would make it retake the role only to block again
//! for another time slice. Instead, for the calls listed here, the handler:
//!
//! 1. hands the role to another thread of the role (see `signal`);
//! 2. carries the call out itself, with the same arguments, blocking this
//!    thread (which holds no role, so nothing else runs on it);
//! 3. writes the result where the interrupted code expects it and moves its
//!    `rip` past the `syscall` instruction;
//! 4. queues the GVThread as frozen and waits for the role, like any frozen
//!    GVThread; when it gets the role back the handler returns and the code
//!    continues with the call's result, never having run without the role.
//!
//! Only calls that the kernel itself would restart after the handler
//! (`SA_RESTART`), from a list of ordinary blocking calls, are carried out
//! this way: restarting them is exactly what the kernel would do. Sleeps
//! (`nanosleep`, `clock_nanosleep`), which return `EINTR` instead, are
//! resumed with the remaining time the kernel wrote back (the caller would
//! otherwise loop on `EINTR`, as `std::thread::sleep` does). Anything else
//! blocked in the kernel is frozen and resumed in turn; its call restarts
//! then.

use crate::arch::Syscall;

/// `TIMER_ABSTIME` of `clock_nanosleep` (not exported by `libc` for Linux).
const TIMER_ABSTIME: libc::c_long = 1;

/// Calls carried out from the handler when the kernel would restart them.
/// (aarch64 Linux has no `open`: its C library uses `openat`.)
const RESTARTABLE: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_open,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_connect,
    libc::SYS_accept,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_wait4,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_futex,
    libc::SYS_waitid,
    libc::SYS_openat,
    libc::SYS_accept4,
];

/// The call to carry out for `call`, if it is one of those above (for a
/// sleep that returned `EINTR`: the sleep for the remaining time).
pub(crate) fn resumable(call: Syscall) -> Option<Syscall> {
    if !call.interrupted {
        return RESTARTABLE.contains(&call.nr).then_some(call);
    }
    let mut call = call;
    match call.nr {
        // nanosleep(req, rem): the kernel wrote the time left into `rem`.
        libc::SYS_nanosleep if call.args[1] != 0 => call.args[0] = call.args[1],
        // clock_nanosleep(clock, flags, req, rem): an absolute deadline is
        // resumed as it is; a relative one with the time left in `rem`.
        // On aarch64 the result `-EINTR` went to `x0`, over the clock id. A
        // relative sleep goes on as `nanosleep` (CLOCK_MONOTONIC) for the
        // time left: the kernel times a relative sleep on CLOCK_REALTIME
        // (glibc's `nanosleep`, so `std::thread::sleep`) on CLOCK_MONOTONIC
        // anyway, and CLOCK_TAI runs at its rate. An absolute one needs its
        // clock: frozen instead, it returns `EINTR` to its caller.
        libc::SYS_clock_nanosleep if !call.first_arg_known => {
            if call.args[1] & TIMER_ABSTIME != 0 || call.args[3] == 0 {
                return None;
            }
            call.nr = libc::SYS_nanosleep;
            call.args = [call.args[3], call.args[3], 0, 0, 0, 0];
        }
        libc::SYS_clock_nanosleep if call.args[1] & TIMER_ABSTIME != 0 => {}
        libc::SYS_clock_nanosleep if call.args[3] != 0 => call.args[2] = call.args[3],
        _ => return None,
    }
    Some(call)
}

/// Carries `call` out on this thread and returns the raw kernel result (a
/// value, or `-errno`). Async-signal-safe; the caller saves `errno`.
pub(crate) fn carry_out(call: Syscall) -> libc::c_long {
    let [a, b, c, d, e, f] = call.args;
    // SAFETY: the same call with the same arguments the interrupted code made
    // (or, for a sleep, the time it had left), on the same thread.
    let r = unsafe { libc::syscall(call.nr, a, b, c, d, e, f) };
    if r == -1 {
        // SAFETY: reading errno of this thread.
        -(unsafe { *libc::__errno_location() }) as libc::c_long
    } else {
        r
    }
}
