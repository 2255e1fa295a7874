//! Large `max_gvthreads` values cost nothing up front: address space is
//! reserved in 4 GiB chunks as the live count grows, so many runtimes with the
//! default (2 Mi GVThreads) coexist in one process.

mod common;

use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

/// The largest accepted limit (2^31 - 1 GVThreads, far more address space
/// than x86_64 has) still builds a runtime: nothing is reserved for it beyond
/// the first chunk, and its side table is not touched.
#[test]
fn absurd_max_gvthreads_is_lazy() {
    let _w = common::watchdog("absurd_max_gvthreads_is_lazy", Duration::from_secs(60));
    let before = common::rss_bytes();
    let mut rt = Runtime::try_new(SchedulerConfig::default().num_workers(1).max_gvthreads(u32::MAX as usize / 2))
        .expect("a huge max_gvthreads is reserved lazily");
    assert_eq!(rt.block_on(|| 6 * 7), 42);
    let grown = common::rss_bytes().saturating_sub(before);
    assert!(grown < 16 << 20, "a lazy pool grew RSS by {} KiB", grown / 1024);
    drop(rt);

    // One past the limit is refused with an error naming the knob.
    let err = Runtime::try_new(SchedulerConfig::default().num_workers(1).max_gvthreads(u32::MAX as usize / 2 + 1))
        .expect_err("beyond the limit");
    assert!(err.to_string().contains("max_gvthreads"), "{err}");
}

/// Twenty runtimes with the default 2 Mi limit (20 × 32 TiB if reserved up
/// front, over four times the user address space) all run at once.
#[test]
fn twenty_default_runtimes_coexist() {
    let _w = common::watchdog("twenty_default_runtimes_coexist", Duration::from_secs(60));
    let mut rts: Vec<Runtime> = (0..20)
        .map(|_| {
            Runtime::try_new(SchedulerConfig::default().num_workers(1).max_gvthreads(2_097_152))
                .expect("runtime with max_gvthreads(2_097_152)")
        })
        .collect();
    // Each grows past its first chunk (300 live GVThreads > 256 slots).
    for (i, rt) in rts.iter_mut().enumerate() {
        let sum: usize = rt.block_on(move || {
            let (tx, rx) = gvthread::channel::<()>(1);
            let joins: Vec<_> = (0..300)
                .map(|k| {
                    let rx = rx.clone();
                    gvthread::spawn(move |_| {
                        let _ = rx.recv();
                        k + i
                    })
                })
                .collect();
            drop(tx);
            joins.into_iter().map(|j| j.join().unwrap()).sum()
        });
        assert_eq!(sum, (0..300).sum::<usize>() + 300 * i);
    }
}
