//! Memory benchmarks.
//!
//! * **criterion**: `spawn_join/fresh_slot` against `spawn_join/reused_slot`.
//!   Both run the same batch shape: 1,000 GVThreads spawned (each parks on a
//!   channel, so every spawn takes a different slot), then released and
//!   joined; the figure is per GVThread. "fresh" uses a new runtime for every
//!   batch, so every slot is never-used (chunk reserved, guard marker
//!   installed, top page and its page-table page faulted in); "reused" runs
//!   the batch on a runtime that already ran it, so every slot comes from the
//!   free stack with its pages (freed slots keep them until the scavenger
//!   finds them unused for seconds).
//! * **resident memory per idle task** (plain section, printed before
//!   criterion runs): 10k / 100k / 1M idle gvthreads (parked on a channel
//!   `recv`), tokio tasks (awaiting a `oneshot`, multi-thread runtime) and OS
//!   threads (std threads blocked on a channel, 1k and 10k only). Each figure
//!   comes from a child process (this binary re-executed with
//!   `GVTHREAD_MEMORY_CHILD=kind:count`), so the numbers do not mix: resident
//!   set (`VmRSS`) and page tables (`VmPTE`) before spawning and with every
//!   task idle, divided by the count.
//!
//! Run with `cargo bench -p benches --bench memory` (about a minute; the 1M
//! children need about 10 GiB between them, one at a time). Set
//! `GVTHREAD_MEMORY_MAX=100000` to skip the 1M rows. Results are recorded in
//! `docs/benchmarks.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group};
use gvthread::{Runtime, SchedulerConfig};

const CHILD_VAR: &str = "GVTHREAD_MEMORY_CHILD";
const BATCH: usize = 1_000;

fn gvthread_runtime(max: usize) -> Runtime {
    Runtime::new(SchedulerConfig::default().num_workers(1).max_gvthreads(max))
}

/// One batch: `BATCH` GVThreads parked at once, then released and joined.
/// Runs inside a GVThread; returns the time it took.
fn batch() -> Duration {
    let t = Instant::now();
    let (tx, rx) = gvthread::channel::<()>(1);
    let joins: Vec<_> = (0..BATCH)
        .map(|i| {
            let rx = rx.clone();
            gvthread::spawn(move |_| {
                let _ = rx.recv();
                i
            })
        })
        .collect();
    drop(tx);
    for j in joins {
        std::hint::black_box(j.join().expect("GVThread failed"));
    }
    t.elapsed()
}

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("fresh_slot", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let batches = (iters as usize).div_ceil(BATCH);
            for _ in 0..batches {
                // A new runtime per batch: every slot is never-used.
                let mut rt = gvthread_runtime(BATCH + 1);
                total += rt.block_on(batch);
            }
            total.mul_f64(iters as f64 / (batches * BATCH) as f64)
        })
    });
    g.bench_function("reused_slot", |b| {
        // Room for the previous batch's last GVThreads, whose joins complete
        // just before their slots are freed.
        let mut rt = gvthread_runtime(2 * BATCH);
        rt.block_on(batch); // every slot of the batch is now hot
        b.iter_custom(|iters| {
            let batches = (iters as usize).div_ceil(BATCH);
            let total = rt.block_on(move || (0..batches).map(|_| batch()).sum::<Duration>());
            total.mul_f64(iters as f64 / (batches * BATCH) as f64)
        })
    });
    g.finish();
}

criterion_group!(benches, spawn_join);

// ---------------------------------------------------------------------------
// Resident memory per idle task, one child process per measurement.

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn vmas() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

struct Sample {
    rss: u64,
    pte: u64,
    vmas: usize,
}

fn sample() -> Sample {
    Sample { rss: status_bytes("VmRSS"), pte: status_bytes("VmPTE"), vmas: vmas() }
}

/// Waits until `started` reaches `n`, then a little longer for the last
/// tasks to finish parking.
fn settle(started: &AtomicUsize, n: usize) {
    while started.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
}

/// Child: measures `n` idle tasks of `kind`; prints
/// `RESULT rss_per pte_per create_ns vmas`.
fn child(kind: &str, n: usize) {
    let before;
    let live;
    let create;
    let started = Arc::new(AtomicUsize::new(0));
    match kind {
        "gvthread" => {
            let rt = Runtime::new(SchedulerConfig::default().num_workers(2).max_gvthreads(n));
            let handle = rt.handle();
            let (tx, rx) = gvthread::channel::<()>(1);
            before = sample();
            let t = Instant::now();
            let joins: Vec<_> = (0..n)
                .map(|_| {
                    let (rx, started) = (rx.clone(), started.clone());
                    handle.spawn(move |_| {
                        started.fetch_add(1, Ordering::Relaxed);
                        let _ = rx.recv();
                    })
                })
                .collect();
            settle(&started, n);
            create = t.elapsed() - Duration::from_millis(200);
            live = sample();
            drop(tx);
            joins.into_iter().for_each(|j| j.join().unwrap());
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
            before = sample();
            let t = Instant::now();
            let mut senders = Vec::with_capacity(n);
            let joins: Vec<_> = (0..n)
                .map(|_| {
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    senders.push(tx);
                    let started = started.clone();
                    rt.spawn(async move {
                        started.fetch_add(1, Ordering::Relaxed);
                        let _ = rx.await;
                    })
                })
                .collect();
            settle(&started, n);
            create = t.elapsed() - Duration::from_millis(200);
            live = sample();
            drop(senders);
            rt.block_on(async {
                for j in joins {
                    j.await.unwrap();
                }
            });
        }
        "thread" => {
            let (tx, rx) = crossbeam_channel::bounded::<()>(0);
            before = sample();
            let t = Instant::now();
            let joins: Vec<_> = (0..n)
                .map(|_| {
                    let (rx, started) = (rx.clone(), started.clone());
                    std::thread::spawn(move || {
                        started.fetch_add(1, Ordering::Relaxed);
                        let _ = rx.recv();
                    })
                })
                .collect();
            settle(&started, n);
            create = t.elapsed() - Duration::from_millis(200);
            live = sample();
            drop(tx);
            joins.into_iter().for_each(|j| j.join().unwrap());
        }
        other => panic!("unknown kind {other}"),
    }
    println!(
        "RESULT {} {} {} {}",
        live.rss.saturating_sub(before.rss) as f64 / n as f64,
        live.pte.saturating_sub(before.pte) as f64 / n as f64,
        create.as_nanos() as f64 / n as f64,
        live.vmas
    );
}

fn memory_table() {
    let max: usize = std::env::var("GVTHREAD_MEMORY_MAX").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let exe = std::env::current_exe().expect("bench binary path");
    println!("resident memory per idle task (child process per row)");
    println!(
        "{:<10} {:>9} {:>14} {:>14} {:>14} {:>16} {:>8}",
        "kind", "count", "RSS/task", "VmPTE/task", "RSS+PTE/task", "create ns/task", "VMAs"
    );
    let rows: &[(&str, &[usize])] = &[
        ("gvthread", &[10_000, 100_000, 1_000_000]),
        ("tokio", &[10_000, 100_000, 1_000_000]),
        ("thread", &[1_000, 10_000]),
    ];
    for (kind, counts) in rows {
        for &n in counts.iter().filter(|&&n| n <= max) {
            let out =
                std::process::Command::new(&exe).env(CHILD_VAR, format!("{kind}:{n}")).output().expect("run child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
                println!("{kind:<10} {n:>9} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
                continue;
            };
            let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
            println!(
                "{:<10} {:>9} {:>11.0} B {:>11.0} B {:>11.0} B {:>16.0} {:>8}",
                kind,
                n,
                v[0],
                v[1],
                v[0] + v[1],
                v[2],
                v[3]
            );
        }
    }
    println!();
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        let (kind, n) = spec.split_once(':').expect("kind:count");
        child(kind, n.parse().expect("count"));
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: only
    // print the table for a real bench run.
    if std::env::args().any(|a| a == "--bench") {
        memory_table();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
