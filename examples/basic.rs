//! Basic use of gvthread: spawn and join, `yield_now`, cancellation tokens,
//! and priorities.
//!
//! The runtime has a single worker thread so that the order of the output is
//! deterministic; with more workers the same code runs in parallel.
//!
//! ```text
//! cargo run --example basic
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gvthread::{CancellationToken, Priority, Runtime, SchedulerConfig};

fn main() {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));

    rt.block_on(|| {
        println!("main runs as {}", gvthread::current_id().expect("inside a GVThread"));
        spawn_and_join();
        interleave_with_yield();
        cancel_with_tokens();
        priorities();
    });
    println!("done; dropping the runtime stops its worker and timer threads");
}

/// `spawn` returns a `JoinHandle`; `join` parks the caller (only the calling
/// GVThread, not the worker thread) until the result is there.
fn spawn_and_join() {
    println!("\n-- spawn and join");
    let handles: Vec<_> = (1..=4u64).map(|n| gvthread::spawn(move |_token| (1..=n * 5).product::<u64>())).collect();
    for (n, h) in (1..=4u64).zip(handles) {
        let id = h.id();
        println!("{id} computed {}! = {}", n * 5, h.join().unwrap());
    }

    // Keep the expected panic's report to one line.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| println!("(panic hook) {info}")));
    let failing = gvthread::spawn(|_| -> u32 { std::panic::panic_any("this GVThread gave up") });
    let err = failing.join().unwrap_err();
    std::panic::set_hook(default_hook);
    println!("a panicking GVThread is reported to its joiner: is_panic = {}, {err}", err.is_panic());
}

/// `yield_now` hands the worker to the next runnable GVThread: two GVThreads
/// on one worker take turns.
fn interleave_with_yield() {
    println!("\n-- yield_now");
    let log = Arc::new(Mutex::new(Vec::new()));
    let turns = |name: &'static str, log: Arc<Mutex<Vec<String>>>| {
        move |_token| {
            for i in 0..3 {
                // The std Mutex guard is dropped before yielding (see docs/safety.md).
                log.lock().unwrap().push(format!("{name}{i}"));
                gvthread::yield_now();
            }
        }
    };
    let a = gvthread::spawn(turns("ping", log.clone()));
    let b = gvthread::spawn(turns("pong", log.clone()));
    a.join().unwrap();
    b.join().unwrap();
    println!("order of turns: {}", log.lock().unwrap().join(" "));
}

/// Every GVThread gets a `CancellationToken`, a child of its spawner's token.
/// Cancelling a token cancels its descendants; code polls `is_cancelled`.
fn cancel_with_tokens() {
    println!("\n-- cancellation");
    let poller = gvthread::spawn(|token: CancellationToken| {
        let mut rounds = 0u32;
        while !token.is_cancelled() {
            rounds += 1;
            gvthread::sleep(Duration::from_millis(1)); // parks only this GVThread
        }
        rounds
    });
    gvthread::sleep(Duration::from_millis(20));
    poller.cancel(); // cancels the token the GVThread was given
    println!("poller saw its token cancelled after {} rounds", poller.join().unwrap());

    // Tokens also work as a tree of their own.
    let parent = CancellationToken::new();
    let children: Vec<_> = (0..3)
        .map(|i| {
            let child = parent.child();
            gvthread::spawn(move |_| {
                while !child.is_cancelled() {
                    gvthread::sleep(Duration::from_millis(1));
                }
                i
            })
        })
        .collect();
    parent.cancel();
    let stopped: Vec<u32> = children.into_iter().map(|h| h.join().unwrap()).collect();
    println!("cancelling one parent token stopped children {stopped:?}");
}

/// A worker takes runnable GVThreads in priority order: Critical, High,
/// Normal, Low.
fn priorities() {
    println!("\n-- priorities");
    let log = Arc::new(Mutex::new(Vec::new()));
    // Spawned lowest first; all four are runnable before any of them runs.
    let handles: Vec<_> = [Priority::Low, Priority::Normal, Priority::High, Priority::Critical]
        .into_iter()
        .map(|p| {
            let log = log.clone();
            gvthread::spawn_with_priority(p, move |_| log.lock().unwrap().push(format!("{p:?}")))
        })
        .collect();
    println!("spawned in the order Low, Normal, High, Critical");
    for h in handles {
        h.join().unwrap();
    }
    println!("ran in the order {}", log.lock().unwrap().join(", "));
}
