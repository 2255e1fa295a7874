//! What the host machine is doing while a bench runs.
//!
//! On the shared VM the benches run on, the cost of moving a cache line
//! from one vCPU to the other changes by several times for seconds at a
//! time (the hypervisor places the two vCPUs on nearby or distant physical
//! cores): a round trip of one line measured 52-71 ns in one minute and
//! 316-327 ns the next. Every workload in which two threads share data
//! (work stealing, a stack freed on one worker and reused on the other)
//! slows with it, Go's and tokio's as much as gvthread's. Benches that
//! compare runtimes across child processes print this probe beside each
//! round, so that figures taken in different host states are not compared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Round trips per probe: a few milliseconds at the slowest host state.
const ROUND_TRIPS: u64 = 20_000;

/// Nanoseconds per round trip of one cache line between two threads
/// pinned to CPUs 0 and 1 (unpinned where that fails, as on a one-CPU
/// machine): one thread writes an odd value, the other answers with the
/// next even one.
///
/// ```
/// let ns = benches::host::cross_core_round_trip_ns();
/// assert!(ns > 0.0);
/// ```
pub fn cross_core_round_trip_ns() -> f64 {
    let line = Arc::new(AtomicU64::new(0));
    let answer = {
        let line = line.clone();
        std::thread::spawn(move || {
            pin_to(1);
            for i in 0..ROUND_TRIPS {
                wait_for(&line, 2 * i + 1);
                line.store(2 * i + 2, Ordering::Release);
            }
        })
    };
    let ask = std::thread::spawn(move || {
        pin_to(0);
        // Both threads running before the clock starts.
        line.store(1, Ordering::Release);
        wait_for(&line, 2);
        let t = Instant::now();
        for i in 1..ROUND_TRIPS {
            line.store(2 * i + 1, Ordering::Release);
            wait_for(&line, 2 * i + 2);
        }
        t.elapsed().as_nanos() as f64 / (ROUND_TRIPS - 1) as f64
    });
    let ns = ask.join().expect("probe thread");
    answer.join().expect("probe thread");
    ns
}

/// Pins the calling thread to `cpu`; leaves it unpinned if that fails.
fn pin_to(cpu: usize) {
    // SAFETY: `set` is a plain bitmask, zeroed then set through libc's own
    // helpers; `sched_setaffinity(0, ..)` only affects the calling thread
    // and reports failure through its return value, ignored here (unpinned
    // is a valid, noisier probe).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Spins until `line` holds `value`, yielding now and then (should both
/// threads share one vCPU, the other gets to run).
fn wait_for(line: &AtomicU64, value: u64) {
    let mut spins = 0u32;
    while line.load(Ordering::Acquire) != value {
        spins += 1;
        if spins.is_multiple_of(10_000) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}
