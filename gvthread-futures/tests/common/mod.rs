//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[path = "../../../gvthread/tests/common/hang.rs"]
mod hang;

use std::sync::mpsc;
use std::time::Duration;

/// Aborts the process if it is still alive after `secs` seconds: a hang
/// fails the test run instead of stalling it.
pub struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    pub fn new(name: &'static str, secs: u64) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
                hang::report_hang(
                    std::process::id(),
                    &format!("watchdog: test `{name}` still running after {secs} s; aborting"),
                );
                std::process::abort();
            }
        });
        Watchdog(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

/// A multi-thread tokio runtime with `workers` workers.
pub fn tokio_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("tokio runtime")
}

/// A gvthread runtime whose workers all entered `tokio`'s context (the
/// recipe of docs/tokio.md).
pub fn gv_rt_in(tokio: &tokio::runtime::Runtime, workers: usize) -> gvthread::Runtime {
    let handle = tokio.handle().clone();
    let config = gvthread::SchedulerConfig::default()
        .num_workers(workers)
        .on_worker_start(move || std::mem::forget(handle.enter()));
    gvthread::Runtime::new(config)
}
