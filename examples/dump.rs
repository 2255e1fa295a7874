//! A dump of every GVThread: what each one waits on, and where in its code.
//!
//! ```text
//! cargo run --release --example dump
//! ```
//!
//! Three GVThreads park in functions of their own (on a channel, a mutex and a
//! sleep); the program prints `Handle::dump()`, then lets them finish. With
//! `dump_on_sigquit(true)` the same text goes to standard error whenever the
//! process receives SIGQUIT (`kill -QUIT <pid>`, or Ctrl-\ in a terminal): run
//! with `-- --wait` to try it (the program then waits 30 s before finishing).

use std::sync::Arc;
use std::time::Duration;

use gvthread::{CancellationToken, Receiver, Runtime, SchedMutex, SchedulerConfig};

#[inline(never)]
fn wait_for_orders(orders: Receiver<u32>) -> u32 {
    orders.iter().sum()
}

#[inline(never)]
fn update_the_ledger(ledger: Arc<SchedMutex<u64>>) {
    *ledger.lock() += 1;
}

#[inline(never)]
fn poll_every_second(token: CancellationToken) {
    while !token.is_cancelled() {
        gvthread::sleep(Duration::from_secs(1));
    }
}

fn main() {
    let wait = std::env::args().any(|a| a == "--wait");
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2).dump_on_sigquit(true));
    let h = rt.handle();

    let (tx, rx) = gvthread::channel::<u32>(0);
    let orders = h.spawn(move |_| wait_for_orders(rx));
    let ledger = Arc::new(SchedMutex::new(0u64));
    let held = ledger.lock(); // the main thread holds the ledger, so the GVThread waits
    let l = ledger.clone();
    let updater = h.spawn(move |_| update_the_ledger(l));
    let poller = h.spawn(poll_every_second);

    // Give them a moment to park, then look.
    let mut dump = h.dump();
    for _ in 0..1000 {
        if ["wait_for_orders", "update_the_ledger", "poll_every_second"].iter().all(|f| dump.contains(f)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        dump = h.dump();
    }
    println!("{dump}");
    if wait {
        println!("pid {}: send SIGQUIT (kill -QUIT {0}) for another dump on stderr", std::process::id());
        std::thread::sleep(Duration::from_secs(30));
    }

    tx.send(5).unwrap();
    drop(tx);
    drop(held);
    poller.cancel();
    assert_eq!(orders.join().unwrap(), 5);
    updater.join().unwrap();
    poller.join().unwrap();
    assert_eq!(*ledger.lock(), 1);
}
