//! After a peak, free slots give back their page tables, not only their pages.

mod common;

use std::time::Duration;

#[test]
fn page_tables_are_given_back_after_a_peak() {
    const NAME: &str = "page_tables_are_given_back_after_a_peak";
    if !common::isolated(NAME, Duration::from_secs(90)) {
        return;
    }
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    let base = common::vm_pte_kib();
    let (peak, after) = rt.block_on(move || {
        let (tx, rx) = gvthread::channel::<()>(0);
        let hs: Vec<_> = (0..20_000)
            .map(|_| {
                let rx = rx.clone();
                gvthread::spawn(move |_| {
                    let _ = rx.recv();
                })
            })
            .collect();
        gvthread::sleep(Duration::from_millis(50));
        let peak = common::vm_pte_kib();
        drop(tx);
        for h in hs {
            h.join().unwrap();
        }
        let start = std::time::Instant::now();
        let target = base + (peak - base) / 4;
        while common::vm_pte_kib() > target && start.elapsed() < Duration::from_secs(60) {
            gvthread::sleep(Duration::from_millis(20));
        }
        (peak, common::vm_pte_kib())
    });
    eprintln!("VmPTE: base {base} KiB, peak {peak} KiB, after {after} KiB");
    // 20,000 parked GVThreads need ~80 MiB of page tables; once free, whole
    // chunks are remapped and only the slots kept warm keep theirs.
    assert!(peak - base > 40_000, "the peak used surprisingly few page tables: {base} -> {peak} KiB");
    assert!(
        after <= base + (peak - base) / 4,
        "page tables were not given back: base {base}, peak {peak}, after {after} KiB"
    );
    // The remapped slots are reused correctly (guards reinstalled lazily).
    let n = rt.block_on(|| (0..20_000u64).map(|i| gvthread::spawn(move |_| i)).map(|h| h.join().unwrap()).sum::<u64>());
    assert_eq!(n, 20_000 * 19_999 / 2);
}
