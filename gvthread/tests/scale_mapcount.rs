//! Issue 10 item 8: without guard markers (forced here with
//! `GVTHREAD_FORCE_MPROTECT_GUARDS=1`), each GVThread stack costs two kernel
//! mappings. The budget is checked when slots are prepared, against the
//! process's current mapping count, so spawning beyond `vm.max_map_count`
//! fails with a clear error instead of a crash, no slot is lost, and the
//! runtime keeps working.

mod common;

use std::time::Duration;

#[test]
fn mprotect_fallback_reports_the_map_budget_at_growth_time() {
    const NAME: &str = "mprotect_fallback_reports_the_map_budget_at_growth_time";
    if std::env::var("GVTHREAD_FORCE_MPROTECT_GUARDS").as_deref() != Ok("1") {
        // Re-run this test in a child with the fallback forced.
        let _w = common::watchdog(NAME, Duration::from_secs(300));
        let out = common::test_binary()
            .args([NAME, "--exact", "--nocapture", "--test-threads", "1"])
            .env("GVTHREAD_FORCE_MPROTECT_GUARDS", "1")
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let Some(limit) =
        std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|s| s.trim().parse::<usize>().ok())
    else {
        return;
    };
    if limit > 1_000_000 {
        eprintln!("vm.max_map_count is {limit}: too high to reach in a test; skipped");
        return;
    }
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1).stack_size(64 * 1024));
    let (parked, err) = rt.block_on(move || {
        let (tx, rx) = gvthread::channel::<()>(0);
        let mut hs = Vec::new();
        let err = loop {
            let rx = rx.clone();
            match gvthread::try_spawn(move |_| {
                let _ = rx.recv();
            }) {
                Ok(h) => hs.push(h),
                Err(e) => break e,
            }
            assert!(hs.len() <= limit, "more GVThreads than the map budget allows");
        };
        let parked = hs.len();
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        (parked, err)
    });
    let msg = err.to_string();
    eprintln!("{parked} parked before: {msg}");
    assert!(msg.contains("vm.max_map_count"), "unclear error: {msg}");
    assert!(parked > 1000, "only {parked} GVThreads before the map budget ran out");
    // Every slot came back: the same number can be parked again.
    let again = rt.block_on(move || {
        let (tx, rx) = gvthread::channel::<()>(0);
        let hs: Vec<_> = (0..parked)
            .map(|_| {
                let rx = rx.clone();
                gvthread::try_spawn(move |_| {
                    let _ = rx.recv();
                })
                .expect("slots freed by the first round are reused")
            })
            .collect();
        drop(tx);
        hs.into_iter().map(|h| h.join().unwrap()).count()
    });
    assert_eq!(again, parked);
}
