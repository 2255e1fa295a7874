//! `block_on` on plain OS threads: the thread parks, the waker unparks it.

mod common;

use std::time::Duration;

use futures::channel::oneshot;
use gvthread_futures::block_on;

#[test]
fn block_on_on_the_main_thread_with_a_foreign_waker() {
    let _dog = common::Watchdog::new("block_on_on_the_main_thread_with_a_foreign_waker", 60);
    for i in 0..100 {
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || tx.send(i).unwrap());
        assert_eq!(block_on(rx).unwrap(), i);
    }
}

#[test]
fn block_on_outside_awaits_a_gvthread_and_tokio() {
    let _dog = common::Watchdog::new("block_on_outside_awaits_a_gvthread_and_tokio", 60);
    let tokio = common::tokio_rt(1);
    let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    let h = rt.handle().spawn(|_| {
        gvthread::sleep(Duration::from_millis(2));
        5
    });
    assert_eq!(block_on(h).unwrap(), 5);
    // A tokio timer, driven by tokio's own worker, from a plain thread.
    let _guard = tokio.enter();
    block_on(tokio::time::sleep(Duration::from_millis(2)));
}
