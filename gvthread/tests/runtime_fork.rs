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
    // A runtime dropped before the fork leaves its worker threads in the
    // process's pool of role threads (`gvthread-worker-2` stays there: the
    // runtime below takes the other two); in the child they do not exist,
    // so the child's runtime must start its own.
    drop(common::rt(3));
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
    // So is spawning through a Builder.
    match gvthread::Builder::new().name("in-child".into()).spawn(|_| ()) {
        Err(gvthread::SpawnError::Forked) => {}
        other => {
            eprintln!("child: Builder::spawn gave {other:?}");
            return 6;
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
    // A runtime built in the child works (from a plain thread: this one is
    // still a GVThread of the parent's runtime). Not checked on aarch64: CI
    // runs it under qemu-user, which aborts when a forked child of a
    // multithreaded process starts a thread.
    if cfg!(target_arch = "aarch64") {
        return 0;
    }
    let answer = std::thread::spawn(|| {
        let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(3));
        let sum =
            rt.block_on(|| (0..3).map(|i| gvthread::spawn(move |_| 2 * i)).map(|h| h.join().unwrap()).sum::<i32>());
        // Every worker's thread comes up (a job handed to a pooled thread
        // of the parent would never start).
        let mut threads = 0;
        for _ in 0..500 {
            threads = rt.metrics().os_threads;
            if threads >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (sum * 7, threads)
    })
    .join();
    match answer {
        Ok((42, 3..)) => {}
        other => {
            eprintln!("child: a runtime built in the child gave {other:?}");
            return 5;
        }
    }
    0
}
