use gvthread::{Runtime, SchedulerConfig};
use std::time::Duration;

#[test]
fn smoke() {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    assert_eq!(rt.block_on(|| 1 + 1), 2);
    let n = rt.block_on(|| {
        let hs: Vec<_> = (0..1000u64).map(|i| gvthread::spawn(move |_| { gvthread::yield_now(); i })).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(n, 499500);
    let t = std::time::Instant::now();
    rt.block_on(|| gvthread::sleep(Duration::from_millis(20)));
    assert!(t.elapsed() >= Duration::from_millis(20));
}

#[test]
fn stress_many() {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    for _ in 0..3 {
        let n = rt.block_on(|| {
            let hs: Vec<_> = (0..100_000u64).map(|i| gvthread::spawn(move |_| { if i % 7 == 0 { gvthread::yield_now(); } i })).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(n, 100_000 * 99_999 / 2);
    }
    let n = rt.block_on(|| {
        let hs: Vec<_> = (0..1000u64).map(|i| gvthread::spawn(move |_| { for _ in 0..100 { gvthread::yield_now(); } gvthread::sleep(Duration::from_micros(i % 50)); i })).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(n, 499500);
}
