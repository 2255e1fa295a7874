//! Channels between GVThreads: a four-stage pipeline (producer -> square ->
//! add one -> consumer) with its throughput, then the "typical usage" of the original design
//! with `try_send`/`try_recv`, and a `SchedMutex` shared by the stages.
//!
//! Run with `cargo run --release -p examples --example channel`.

use std::sync::Arc;
use std::time::Instant;

use gvthread::{Runtime, SchedMutex, SchedulerConfig, channel, spawn, yield_now};

const ITEMS: u64 = 200_000;

fn pipeline() {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let stats = Arc::new(SchedMutex::new(Vec::<(&'static str, u64)>::new()));
    let stats2 = stats.clone();
    let (sum, elapsed) = rt.block_on(move || {
        let start = Instant::now();
        let (src_tx, src_rx) = channel::<u64>(64);
        let (sq_tx, sq_rx) = channel::<u64>(64);
        let (out_tx, out_rx) = channel::<u64>(64);

        let producer = spawn(move |_| {
            for i in 0..ITEMS {
                src_tx.send(i).unwrap();
            }
            // Dropping `src_tx` ends the next stage's loop.
        });
        let s = stats2.clone();
        let square = spawn(move |_| {
            let mut n = 0;
            for v in src_rx {
                sq_tx.send(v * v).unwrap();
                n += 1;
            }
            s.lock().push(("square", n));
        });
        let s = stats2;
        let add_one = spawn(move |_| {
            let mut n = 0;
            for v in &sq_rx {
                out_tx.send(v + 1).unwrap();
                n += 1;
            }
            s.lock().push(("add one", n));
        });
        let consumer = spawn(move |_| out_rx.iter().sum::<u64>());
        let sum = consumer.join().unwrap();
        let elapsed = start.elapsed();
        for stage in [producer, square, add_one] {
            stage.join().unwrap();
        }
        (sum, elapsed)
    });
    let expected: u64 = (0..ITEMS).map(|i| i * i + 1).sum();
    assert_eq!(sum, expected);
    let hops = 3 * ITEMS;
    println!(
        "pipeline: {ITEMS} items through 3 channels in {elapsed:?} = {:.2} M items/s, {:.0} ns per hop",
        ITEMS as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_nanos() as f64 / hops as f64
    );
    let mut stats = Arc::try_unwrap(stats).expect("every stage was joined").into_inner();
    stats.sort();
    for (stage, n) in stats {
        println!("  stage {stage:>8}: {n} items");
    }
}

/// The original design's "Typical Usage", with the consumer made to wait for the
/// producer so that it actually sees values.
fn typical_usage() {
    let config = SchedulerConfig::default().num_workers(4);
    let mut runtime = Runtime::new(config);

    runtime.block_on(|| {
        // Spawn GVThreads
        let (tx, rx) = channel(100);

        let producer = spawn(move |token| {
            for i in 0..1000 {
                if token.is_cancelled() {
                    break;
                }
                tx.try_send(i).ok();
                yield_now();
            }
        });

        let consumer = spawn(move |_| {
            let mut got = 0;
            loop {
                while let Ok(val) = rx.try_recv() {
                    if val % 250 == 0 {
                        println!("Got: {}", val);
                    }
                    got += 1;
                }
                match rx.recv() {
                    Ok(_) => got += 1,
                    Err(_) => break, // producer done and channel drained
                }
            }
            got
        });
        producer.join().unwrap();
        let got = consumer.join().unwrap();
        println!("typical usage: received {got} of 1000 (try_send drops values when the channel is full)");
    });
}

fn main() {
    pipeline();
    typical_usage();
}
