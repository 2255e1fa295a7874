//! A `!Send` future in `block_on` inside a GVThread: it stays on the
//! GVThread's stack while the GVThread parks (and possibly resumes on another
//! worker).

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::oneshot;
use gvthread_futures::block_on;

#[test]
fn rc_future_in_block_on_inside_a_gvthread() {
    let _dog = common::Watchdog::new("rc_future_in_block_on_inside_a_gvthread", 60);
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    let total = rt.block_on(|| {
        let handles: Vec<_> = (0..100u64)
            .map(|i| {
                gvthread::spawn(move |_| {
                    let log = Rc::new(RefCell::new(Vec::new()));
                    let log2 = log.clone();
                    let out = block_on(async move {
                        for step in 0..3u64 {
                            let (tx, rx) = oneshot::channel();
                            gvthread::spawn(move |_| tx.send(i * 10 + step).unwrap());
                            // The Rc is held across a real park.
                            let v = rx.await.unwrap();
                            log2.borrow_mut().push(v);
                        }
                        Rc::strong_count(&log2)
                    });
                    assert_eq!(out, 2);
                    log.borrow().iter().sum::<u64>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let expected: u64 = (0..100u64).map(|i| 30 * i + 3).sum();
    assert_eq!(total, expected);
}
