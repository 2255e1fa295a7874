//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

/// Aborts the whole test process if the returned guard is not dropped within
/// `limit`: a hung test fails loudly instead of hanging CI.
pub struct Watchdog(std::sync::mpsc::Sender<()>);

pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("watchdog: test `{name}` still running after {limit:?}; aborting");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

pub fn rt(workers: usize) -> gvthread::Runtime {
    gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(workers))
}
