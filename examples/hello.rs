//! 100,000 GVThreads counting the primes below 1,000,000 together.
//!
//! Each GVThread takes ten consecutive numbers, tests each by trial division,
//! yields half-way through (so the GVThreads interleave on every worker), and
//! one in a hundred also sleeps for a millisecond in the middle (parking only
//! itself; the timer thread wakes it). The main GVThread spawns them all,
//! joins them all, and checks the total against a sieve.
//!
//! ```text
//! cargo run --release --example hello
//! ```
//!
//! # Reading the output
//!
//! ```text
//! spawned 100000 GVThreads on a runtime with 2 workers
//!   each tested 10 numbers, yielded once; 1 in 100 also slept 1 ms
//!   GVThreads started per OS thread: {"gvthread-spare-1": 10114, "gvthread-worker-0": 89886}
//!   GVThreads that resumed on another OS thread than they started on: 15
//!   worker roles moved to another OS thread: 2 (forced preemptions 2, blocked system calls 0, OS threads now 5)
//! primes below 1000000: 78498 (sieve says 78498)
//! ```
//!
//! * A *worker* is a role (a run queue and the right to run GVThreads), and
//!   the OS thread holding it can change. The spawn loop of the main
//!   GVThread runs for longer than a time slice without blocking, so the
//!   preemption monitor freezes it on its thread and hands that role to a
//!   spare thread of the same role (`gvthread-spare-<role>`), which carries
//!   on with the queue. So a spare thread running GVThreads, and more OS
//!   threads than workers, are expected; threads are named after what they
//!   started as.
//! * Idle workers steal GVThreads that have not started yet from busy ones:
//!   that is where load balance comes from. How the work splits between
//!   threads depends on timing; on a busy 2-core machine one thread may do
//!   nearly all of it, and that is not a fault.
//! * A GVThread that has started stays with its role (its *home*): it runs
//!   only on that role's OS threads, so thread-locals stay consistent across
//!   blocking calls (see docs/safety.md). The few that resumed on another OS
//!   thread moved between their role's worker thread and its spare.

use std::collections::BTreeMap;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use gvthread::{Runtime, SchedulerConfig};

/// GVThreads to spawn.
const GVTHREADS: u64 = 100_000;
/// Numbers each GVThread tests.
const PER_GVTHREAD: u64 = 10;
/// Every this many GVThreads, one also sleeps.
const SLEEP_EVERY: u64 = 100;

/// What one GVThread reports back.
struct Report {
    primes: u64,
    /// OS thread it started on (with its name), and the one it finished on.
    started_on: (ThreadId, String),
    finished_on: ThreadId,
}

fn main() {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(workers));

    let start = Instant::now();
    let (primes, per_thread, migrated) = rt.block_on(move || {
        let handles: Vec<_> = (0..GVTHREADS)
            .map(|i| {
                gvthread::spawn(move |_token| {
                    let started_on = os_thread();
                    let lo = i * PER_GVTHREAD;
                    let mid = lo + PER_GVTHREAD / 2;
                    let mut primes = (lo..mid).filter(|&n| is_prime(n)).count() as u64;
                    // Let other GVThreads run; this one may resume on another worker.
                    gvthread::yield_now();
                    if i % SLEEP_EVERY == 0 {
                        gvthread::sleep(Duration::from_millis(1));
                    }
                    primes += (mid..lo + PER_GVTHREAD).filter(|&n| is_prime(n)).count() as u64;
                    Report { primes, started_on, finished_on: os_thread().0 }
                })
            })
            .collect();

        let mut primes = 0;
        let mut per_thread = BTreeMap::<String, u64>::new();
        let mut migrated = 0u64;
        for h in handles {
            let r = h.join().expect("a GVThread panicked");
            primes += r.primes;
            migrated += u64::from(r.started_on.0 != r.finished_on);
            *per_thread.entry(r.started_on.1).or_default() += 1;
        }
        (primes, per_thread, migrated)
    });
    let elapsed = start.elapsed();

    let limit = GVTHREADS * PER_GVTHREAD;
    let expected = sieve_count(limit);
    let m = rt.metrics();
    println!("spawned {GVTHREADS} GVThreads on a runtime with {workers} workers");
    println!("  each tested {PER_GVTHREAD} numbers, yielded once; 1 in {SLEEP_EVERY} also slept 1 ms");
    println!("  GVThreads started per OS thread: {per_thread:?}");
    println!("  GVThreads that resumed on another OS thread than they started on: {migrated}");
    println!(
        "  worker roles moved to another OS thread: {} (forced preemptions {}, blocked system calls {}, OS threads now {})",
        m.handoffs + m.syscall_handoffs,
        m.forced_preemptions,
        m.syscall_handoffs,
        m.os_threads
    );
    println!("primes below {limit}: {primes} (sieve says {expected})");
    println!("took {:.1} ms", elapsed.as_secs_f64() * 1e3);
    if let Some(kib) = peak_rss_kib() {
        println!("peak resident memory of the process: {} MiB", kib / 1024);
    }
    assert_eq!(primes, expected, "the GVThreads miscounted");
}

/// Id and name of the OS thread running the caller.
///
/// `#[inline(never)]`: a GVThread may resume on another OS thread after
/// `yield_now`, and a thread-local address computed before the switch must not
/// be reused after it. Reading it in a separate, non-inlined call each time
/// makes the compiler compute it afresh (see docs/safety.md).
#[inline(never)]
fn os_thread() -> (ThreadId, String) {
    let t = std::thread::current();
    (t.id(), t.name().unwrap_or("unnamed").to_string())
}

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// Number of primes below `limit`, by the sieve of Eratosthenes.
fn sieve_count(limit: u64) -> u64 {
    let n = limit as usize;
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
    }
    count
}

/// Peak resident set size of this process (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
