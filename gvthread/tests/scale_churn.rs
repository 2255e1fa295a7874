//! Spawn/exit churn keeps resident memory flat: freed slots are reused
//! (LIFO, pages kept), so churn never grows the footprint.

mod common;

use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

/// Cycles in total, `BATCH` GVThreads alive at a time.
const CYCLES: usize = 1_000_000;
const BATCH: usize = 2_000;

#[test]
fn churn_keeps_rss_flat() {
    let _w = common::watchdog("churn_keeps_rss_flat", Duration::from_secs(120));
    // With forced preemption on (the default): the spawning GVThread runs
    // for more than a time slice per cycle in debug builds and is preempted
    // while it allocates and frees, which must never deadlock.
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let (rss_warm, rss_end) = rt.block_on(|| {
        let mut joins = Vec::with_capacity(BATCH);
        let cycle = |joins: &mut Vec<gvthread::JoinHandle<usize>>| {
            // Each GVThread dirties a few KiB of its stack, so a slot reused
            // without its pages (or never reused) would show in RSS.
            joins.extend((0..BATCH).map(|i| {
                gvthread::spawn(move |_| {
                    let buf = std::hint::black_box([i as u8; 6000]);
                    buf[i % 6000] as usize
                })
            }));
            for j in joins.drain(..) {
                j.join().expect("GVThread failed");
            }
        };
        // Warm-up: the hot set and allocator caches fill up.
        for _ in 0..10 {
            cycle(&mut joins);
        }
        let warm = common::rss_bytes();
        for _ in 10..CYCLES / BATCH {
            cycle(&mut joins);
        }
        (warm, common::rss_bytes())
    });
    let growth = rss_end.saturating_sub(rss_warm);
    eprintln!("RSS after warm-up {} KiB, after {CYCLES} cycles {} KiB", rss_warm / 1024, rss_end / 1024);
    // Generous: a leak of one page per cycle would be about 4 GB.
    assert!(growth < 32 << 20, "RSS grew by {} KiB over {CYCLES} spawn/exit cycles", growth / 1024);
}
