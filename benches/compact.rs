//! Stack compaction of parked GVThreads (issue 15), in one run:
//!
//! * **memory per idle task**: `n` GVThreads parked (on a `SchedMutex` the
//!   main thread holds, or blocked in `recv` on one channel, as a server's
//!   idle connections wait for their next message), settled, with compaction
//!   off and on (threshold 50 ms; the figure is taken once every GVThread is
//!   compacted), beside Go
//!   goroutines blocked on a channel (`benches/go/spawn.go parked`, when `go`
//!   is on `PATH`) and tokio tasks awaiting a `oneshot`. `VmRSS` and `VmPTE`
//!   before spawning and once settled, divided by the count; one child
//!   process per row.
//! * **wake latency**: 1,000 GVThreads parked on their own `SchedMutex`, woken
//!   one at a time by a GVThread on the same (single) worker (unlock to
//!   "holds the lock" inside the woken GVThread), compacted against not
//!   compacted: p50 and p99, plus the runtime's own restore-latency
//!   histogram (power-of-two buckets, so an upper bound).
//!
//! Both with the default 16 MiB stacks and with a 256 KiB class, whose
//! compacted GVThreads keep their share of a page-table page and their guard
//! marker (a cheaper restore for a little more memory).
//!
//! Run with `cargo bench -p benches --bench compact` (`GVTHREAD_COMPACT_MAX`
//! caps the count, default 1,000,000). Results are in `docs/benchmarks.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Runtime, SchedMutex, SchedulerConfig};

const CHILD_VAR: &str = "GVTHREAD_COMPACT_CHILD";
/// The small stack class of the extra rows: eight slots per page-table
/// page, which compaction keeps (the default class gives its own back).
const SMALL: usize = 256 * 1024;

fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `stack`: the runtime's stack size in bytes (0: the default, 16 MiB).
fn config(n: usize, compact: bool, stack: usize) -> SchedulerConfig {
    let mut config = SchedulerConfig::default().num_workers(2).max_gvthreads(n + 16);
    if stack != 0 {
        config = config.stack_size(stack);
    }
    // SAFETY: the bench's GVThreads park on locks and channels; no other
    // thread touches their stacks.
    unsafe { config.compact_idle_after(compact.then_some(Duration::from_millis(50))) }
}

/// Child: `n` parked GVThreads; prints `RESULT rss_per pte_per settle_s`.
/// `recv`: park in a channel receive instead of on a lock.
fn gv_child(n: usize, compact: bool, recv: bool, stack: usize) {
    let rt = Runtime::new(config(n, compact, stack));
    let h = rt.handle();
    let lock = Arc::new(SchedMutex::new(()));
    let guard = lock.lock();
    let (tx, rx) = gvthread::channel::<()>(1);
    let started = Arc::new(AtomicUsize::new(0));
    let (rss0, pte0) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
    let t = Instant::now();
    let joins: Vec<_> = (0..n)
        .map(|_| {
            let (lock, rx, started) = (lock.clone(), rx.clone(), started.clone());
            h.spawn(move |_| {
                started.fetch_add(1, Ordering::Relaxed);
                if recv {
                    // Disconnected once the sender is dropped.
                    let _ = rx.recv();
                } else {
                    drop(lock.lock());
                }
            })
        })
        .collect();
    while started.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    if compact {
        let limit = Instant::now() + Duration::from_secs(300);
        while h.metrics().compacted_gvthreads < n && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let settle = t.elapsed();
    let (rss, pte) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
    let m = h.metrics();
    println!(
        "RESULT {} {} {:.1} {} {}",
        rss.saturating_sub(rss0) as f64 / n as f64,
        pte.saturating_sub(pte0) as f64 / n as f64,
        settle.as_secs_f64(),
        m.compacted_gvthreads,
        m.compacted_bytes as f64 / n as f64,
    );
    drop(guard);
    drop(tx);
    joins.into_iter().for_each(|j| j.join().unwrap());
}

/// Child: `n` tokio tasks awaiting a oneshot; prints `RESULT rss_per pte_per`.
fn tokio_child(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let (rss0, pte0) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
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
    while started.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (rss, pte) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
    println!("RESULT {} {}", rss.saturating_sub(rss0) as f64 / n as f64, pte.saturating_sub(pte0) as f64 / n as f64);
    drop(senders);
    rt.block_on(async {
        for j in joins {
            j.await.unwrap();
        }
    });
}

/// Child: wake latency of 1,000 parked GVThreads, compacted or not; prints
/// `RESULT p50_ns p99_ns restore_p50_us restore_p99_us`. One worker: the
/// waking GVThread unlocks the mutex GVThread `i` waits on and yields, so `i`
/// runs next on the same worker (no OS-thread wake-up in the figure): the
/// time from the unlock to `i` holding the lock is the wake and switch,
/// plus the restore when `i` was compacted.
fn wake_child(compact: bool, stack: usize) {
    const N: usize = 1000;
    let mut cfg = config(N, compact, stack).num_workers(1);
    cfg = cfg.enable_forced_preempt(false);
    let mut rt = Runtime::new(cfg);
    let h = rt.handle();
    let (lat, q50, q99) = rt.block_on(move || {
        let epoch = Instant::now();
        let locks: Vec<Arc<SchedMutex<()>>> = (0..N).map(|_| Arc::new(SchedMutex::new(()))).collect();
        let mut guards: Vec<_> = locks.iter().map(|l| Some(l.lock())).collect();
        let woke: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
        let joins: Vec<_> = (0..N)
            .map(|i| {
                let (lock, woke) = (locks[i].clone(), woke.clone());
                gvthread::spawn(move |_| {
                    let g = lock.lock();
                    woke[i].store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
                    drop(g);
                })
            })
            .collect();
        // Let every GVThread park on its lock.
        gvthread::sleep(Duration::from_millis(100));
        if compact {
            while h.metrics().compacted_gvthreads < N {
                gvthread::sleep(Duration::from_millis(10));
            }
        }
        let mut lat = Vec::with_capacity(N);
        for i in 0..N {
            let t0 = epoch.elapsed().as_nanos() as u64;
            guards[i] = None;
            let t1 = loop {
                let v = woke[i].load(Ordering::Acquire);
                if v != 0 {
                    break v;
                }
                gvthread::yield_now();
            };
            lat.push(t1.saturating_sub(t0));
        }
        lat.sort_unstable();
        joins.into_iter().for_each(|j| j.join().unwrap());
        let m = h.metrics();
        let q = |x: f64| m.restore_latency_quantile(x).map_or(0, |d| d.as_micros());
        (lat, q(0.5), q(0.99))
    });
    println!("RESULT {} {} {} {}", lat[N / 2], lat[N * 99 / 100], q50, q99);
}

fn run_child(spec: &str) -> Option<Vec<f64>> {
    let exe = std::env::current_exe().expect("bench binary path");
    let out = std::process::Command::new(exe).env(CHILD_VAR, spec).output().ok()?;
    parse(&out.stdout)
}

fn go_child(n: usize) -> Option<Vec<f64>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/go/spawn.go");
    let bin = std::env::temp_dir().join("gvthread-bench-compact-go");
    if !bin.exists() {
        let ok = std::process::Command::new("go").args(["build", "-o"]).arg(&bin).arg(path).status().ok()?;
        if !ok.success() {
            return None;
        }
    }
    let out = std::process::Command::new(&bin).args(["parked", &n.to_string()]).output().ok()?;
    // Go prints `create rss pte`: reorder as `rss pte`.
    parse(&out.stdout).map(|v| vec![v[1], v[2]])
}

fn parse(out: &[u8]) -> Option<Vec<f64>> {
    let s = String::from_utf8_lossy(out);
    let line = s.lines().find_map(|l| l.strip_prefix("RESULT "))?;
    Some(line.split_whitespace().filter_map(|v| v.parse().ok()).collect())
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts[0] {
            "gv" => gv_child(parts[1].parse().unwrap(), parts[2] == "1", parts[3] == "recv", parts[4].parse().unwrap()),
            "tokio" => tokio_child(parts[1].parse().unwrap()),
            "wake" => wake_child(parts[1] == "1", parts[2].parse().unwrap()),
            other => panic!("unknown child {other}"),
        }
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches`: nothing to do
    }
    let max: usize = std::env::var("GVTHREAD_COMPACT_MAX").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    println!("memory per parked task, settled (child process per row)");
    println!(
        "{:<28} {:>9} {:>10} {:>10} {:>12} {:>9} {:>12}",
        "kind", "count", "RSS/task", "PTE/task", "RSS+PTE/task", "settle s", "buffer/task"
    );
    for n in [100_000usize, 1_000_000].into_iter().filter(|&n| n <= max) {
        let rows: Vec<(&str, Option<Vec<f64>>)> = vec![
            ("gvthread, not compacted", run_child(&format!("gv:{n}:0:lock:0"))),
            ("gvthread, compacted", run_child(&format!("gv:{n}:1:lock:0"))),
            ("gvthread, in recv", run_child(&format!("gv:{n}:0:recv:0"))),
            ("gvthread, in recv, compacted", run_child(&format!("gv:{n}:1:recv:0"))),
            ("256 KiB, in recv", run_child(&format!("gv:{n}:0:recv:{SMALL}"))),
            ("256 KiB, in recv, compacted", run_child(&format!("gv:{n}:1:recv:{SMALL}"))),
            ("go (blocked on a channel)", go_child(n)),
            ("tokio (oneshot)", run_child(&format!("tokio:{n}"))),
        ];
        for (kind, v) in rows {
            match v {
                Some(v) => println!(
                    "{:<28} {:>9} {:>8.0} B {:>8.0} B {:>10.0} B {:>9} {:>12}",
                    kind,
                    n,
                    v[0],
                    v[1],
                    v[0] + v[1],
                    v.get(2).map_or("—".into(), |s| format!("{s:.1}")),
                    v.get(4).map_or("—".into(), |b| format!("{b:.0} B")),
                ),
                None => println!("{kind:<28} {n:>9} failed"),
            }
        }
    }
    println!();
    println!("wake latency, 1,000 GVThreads woken one at a time on one worker (unlock -> lock held)");
    let rows = [
        ("not compacted", "0", 0),
        ("compacted", "1", 0),
        ("256 KiB, not compacted", "0", SMALL),
        ("256 KiB, compacted", "1", SMALL),
    ];
    for (kind, c, stack) in rows {
        match run_child(&format!("wake:{c}:{stack}")) {
            Some(v) => println!(
                "{kind:<24} p50 {:>7.1} µs  p99 {:>7.1} µs  (restore alone: p50 < {} µs, p99 < {} µs)",
                v[0] / 1e3,
                v[1] / 1e3,
                v[2],
                v[3]
            ),
            None => println!("{kind:<24} failed"),
        }
    }
}
