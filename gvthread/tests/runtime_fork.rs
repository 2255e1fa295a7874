//! `fork()` from a GVThread: the child can compute and print, and every gvthread call that
//! would need the runtime's other threads (spawn, park) fails with a clear message instead of
//! hanging.

mod common;

use std::time::Duration;

#[test]
fn a_forked_child_fails_clearly() {
    if !common::isolated("a_forked_child_fails_clearly", Duration::from_secs(60)) {
        return;
    }
    let mut rt = common::rt(2);
    let status = rt.block_on(|| {
        // SAFETY: fork from a GVThread; the child only calls gvthread functions that fail
        // without blocking, then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = child();
            // SAFETY: ends the child at once, without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child. (This blocks the worker briefly; fine in a test.)
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    });
    assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "a check failed in the child (see its stderr above)");
}

/// Runs in the child; returns its exit code.
fn child() -> i32 {
    let quiet = |f: fn()| std::panic::catch_unwind(f).err().and_then(|p| p.downcast_ref::<String>().cloned());
    std::panic::set_hook(Box::new(|_| {}));
    // Plain computation works.
    let sum: u64 = (0..1000u64).sum();
    if sum != 499_500 {
        return 1;
    }
    // Spawning is refused with a reason.
    match gvthread::try_spawn(|_| ()) {
        Err(e @ gvthread::SpawnError::Forked) if e.to_string().contains("fork()") => {}
        other => {
            eprintln!("child: try_spawn gave {other:?}");
            return 2;
        }
    }
    // Parking panics with the reason instead of hanging.
    match quiet(|| gvthread::sleep(Duration::from_millis(1))) {
        Some(msg) if msg.contains("before fork()") => {}
        other => {
            eprintln!("child: sleep gave {other:?}");
            return 3;
        }
    }
    // Yielding still works on the forking thread's worker (nothing else runs there).
    if quiet(gvthread::yield_now).is_some() {
        eprintln!("child: yield_now panicked");
        return 4;
    }
    0
}
