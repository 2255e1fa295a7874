//! Helpers shared by the integration tests.
#![allow(dead_code)]

mod hang;

use std::time::Duration;

/// Aborts the whole test process if the returned guard is not dropped within
/// `limit`: a hung test fails loudly instead of hanging CI.
pub struct Watchdog(std::sync::mpsc::Sender<()>);

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            hang::report_hang(
                std::process::id(),
                &format!("watchdog: test `{name}` still running after {limit:?}; aborting"),
            );
            std::process::abort();
        }
    });
    Watchdog(tx)
}

pub fn rt(workers: usize) -> gvthread::Runtime {
    gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(workers))
}

/// Runs the calling test in a child process (the test binary re-executed for
/// just this test), Go's `runTestProg` style, for scenarios that could crash
/// or hang the whole process. Returns true in the child, which should run
/// the scenario; in the parent it waits for the child (up to `limit`),
/// asserts it succeeded, and returns false.
pub fn isolated(name: &str, limit: Duration) -> bool {
    const VAR: &str = "GVTHREAD_ISOLATED_TEST";
    if std::env::var(VAR).as_deref() == Ok(name) {
        return true;
    }
    let mut child = test_binary()
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(VAR, name)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    // Drain both pipes while the child runs: a child that prints a lot would
    // otherwise block on a full pipe.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if start.elapsed() > limit {
            hang::report_hang(child.id(), &format!("isolated test `{name}` hung for {limit:?}; killing it"));
            let _ = child.kill();
            let _ = child.wait();
            panic!("isolated test `{name}` hung for {limit:?}\nstderr:\n{}", err.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let tail: String = stdout.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(
        status.success() && stdout.contains("1 passed"),
        "isolated test `{name}` failed: {status}\nstdout (tail):\n{tail}\nstderr:\n{stderr}"
    );
    false
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmPTE`...), in KiB.
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// `VmPTE` (page-table memory) of this process in KiB.
pub fn vm_pte_kib() -> u64 {
    status_kib("VmPTE")
}

/// Resident memory (`VmRSS`) of this process in bytes.
pub fn rss_bytes() -> u64 {
    status_kib("VmRSS") * 1024
}

/// A command that runs this test binary again. Under an emulator (the
/// aarch64 tests run under qemu-user on an x86_64 host, and the host kernel
/// cannot execute an aarch64 binary by itself) the runner set in
/// `.cargo/config.toml` names itself in `GVTHREAD_TEST_RUNNER`, and the
/// child runs through it too.
pub fn test_binary() -> std::process::Command {
    let exe = std::env::current_exe().expect("test binary path");
    let runner = std::env::var("GVTHREAD_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut cmd = std::process::Command::new(emulator);
            cmd.args(words).arg(exe);
            cmd
        }
        None => std::process::Command::new(exe),
    }
}

/// Names the crash scenario a child process runs (see [`crashing_child`]).
pub const CRASH_VAR: &str = "GVTHREAD_CRASH_TEST";

/// Runs the calling test in a child process that is expected to crash.
/// Returns `None` in the child (which should run the scenario), and the
/// child's standard error in the parent, after checking that the child did
/// not exit successfully.
pub fn crashing_child(name: &str, limit: Duration) -> Option<String> {
    if std::env::var(CRASH_VAR).as_deref() == Ok(name) {
        return None;
    }
    let mut child = test_binary()
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CRASH_VAR, name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut pipe, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if start.elapsed() > limit {
            hang::report_hang(child.id(), &format!("isolated test `{name}` hung for {limit:?}; killing it"));
            let _ = child.kill();
            let _ = child.wait();
            panic!("crash test `{name}` hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    assert!(!status.success(), "crash test `{name}` exited successfully; stderr:\n{stderr}");
    // Aborted (SIGABRT), not killed by the SIGSEGV itself.
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGABRT),
        "child status {status}; stderr:\n{stderr}"
    );
    Some(stderr)
}

/// Spawns `n` GVThreads that each sleep 1 ms in a loop until `stop` is set:
/// a steady stream of timer wake-ups. Call from inside a runtime.
pub fn spawn_sleepers(n: usize, stop: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<gvthread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let s = stop.clone();
            gvthread::spawn(move |_| {
                while !s.load(std::sync::atomic::Ordering::Relaxed) {
                    gvthread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect()
}

/// The kernel's id of the calling thread (a system call each time: no
/// thread-local whose address could be cached across a blocking call).
pub fn os_thread_id() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}
