//! 100,000 GVThreads parked at once, then released and joined: each costs
//! about one page of resident memory while idle.
//!
//! The bound (64 KiB per GVThread) is generous on purpose: it catches a
//! regression to huge pages or to fully committed stacks without being
//! sensitive to allocator noise. The example `stress` and `benches/memory.rs`
//! report the exact figures (about 4.3 KiB resident plus 4.1 KiB of page
//! tables per GVThread).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

const N: usize = 100_000;

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn hundred_thousand_parked_gvthreads() {
    let _w = common::watchdog("hundred_thousand_parked_gvthreads", Duration::from_secs(120));
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2).max_gvthreads(N));
    let handle = rt.handle();
    let (tx, rx) = gvthread::channel::<()>(1);
    let parked = Arc::new(AtomicUsize::new(0));

    let rss_before = status_bytes("VmRSS");
    let joins: Vec<_> = (0..N)
        .map(|i| {
            let rx = rx.clone();
            let parked = parked.clone();
            handle.spawn(move |_| {
                parked.fetch_add(1, Ordering::Relaxed);
                // Parks until every sender is gone.
                assert!(rx.recv().is_err());
                i
            })
        })
        .collect();
    while parked.load(Ordering::Relaxed) < N {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(handle.live_gvthreads(), N);
    // The pool never promises more than max_gvthreads.
    assert!(handle.try_spawn(|_| 0).is_err());
    let rss_live = status_bytes("VmRSS");
    let per = rss_live.saturating_sub(rss_before) / N as u64;
    eprintln!("resident bytes per parked GVThread: {per}");
    assert!(per >= 4096, "each parked GVThread touches at least its top page ({per} bytes?)");
    assert!(per <= 64 * 1024, "{per} bytes resident per parked GVThread");

    drop(tx);
    let mut sum = 0;
    for j in joins {
        sum += j.join().expect("GVThread failed");
    }
    assert_eq!(sum, N * (N - 1) / 2);
    // A join completes just before its GVThread's slot is freed.
    while handle.live_gvthreads() > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
}
