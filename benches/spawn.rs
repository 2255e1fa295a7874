//! Spawn and memory workloads of issue 11, side by side for gvthread, tokio
//! and Go (`benches/go/spawn.go`, when `go` is on `PATH`), in one run:
//!
//! * **parked**: 1M tasks parked at once (2 workers): ns per creation, and
//!   resident memory and page tables per parked task (gvthread with the
//!   default 16 MiB stacks and with the 256 KiB class);
//! * **burst**: 1M tasks spawned, then all joined, twice in one runtime
//!   (1 and 2 workers): ns per task of the first and the **second** burst
//!   (the second reuses warm stacks);
//! * **batch**: spawn + join in batches of 1,000 on 1 worker: ns per task.
//!
//! Every figure comes from a child process (this binary re-executed with
//! `GVTHREAD_SPAWN_CHILD=...`), median of 3 runs, the runtimes taking
//! turns (one run of each per round), with the host's cross-core round trip
//! printed for each round (`benches::host`: on this VM it changes by several
//! times for seconds at a time, and every runtime's 2-worker figures with it). gvthread runtimes here run
//! with the default settings (forced preemption on); set
//! `GVTHREAD_SPAWN_PREEMPT=0` to measure without it.
//! `GVTHREAD_SPAWN_ROWS=parked,burst,batch` picks sections. One command runs them all:
//! `cargo bench -p benches --bench spawn` (a few minutes; the 1M children
//! need about 10 GiB, one at a time). `GVTHREAD_SPAWN_N=100000` scales the
//! workloads down. Results are recorded in `docs/benchmarks.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Builder, Runtime, SchedulerConfig};

const CHILD_VAR: &str = "GVTHREAD_SPAWN_CHILD";
const RUNS: usize = 3;

fn status_bytes(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

// ---------------------------------------------------------------- gvthread

fn config(workers: usize) -> SchedulerConfig {
    let preempt = std::env::var("GVTHREAD_SPAWN_PREEMPT").map_or(true, |v| v != "0");
    SchedulerConfig::default().num_workers(workers).enable_forced_preempt(preempt)
}

fn gv_parked(n: usize, stack: Option<usize>) -> Vec<f64> {
    let mut config = config(2).max_gvthreads(n + 16);
    if let Some(s) = stack {
        config = config.stack_size(s);
    }
    let mut rt = Runtime::new(config);
    let started = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = gvthread::channel::<()>(0);
    let (rss0, pte0) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
    let st = started.clone();
    let (joins, create) = rt.block_on(move || {
        let t = Instant::now();
        let joins: Vec<_> = (0..n)
            .map(|_| {
                let (rx, st) = (rx.clone(), st.clone());
                gvthread::spawn(move |_| {
                    st.fetch_add(1, Ordering::Relaxed);
                    let _ = rx.recv();
                })
            })
            .collect();
        while st.load(Ordering::Relaxed) < n {
            gvthread::sleep(Duration::from_millis(1));
        }
        (joins, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    let (rss, pte) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
    drop(tx);
    for j in joins {
        j.join().unwrap();
    }
    vec![per(create, n), (rss - rss0) / n as f64, (pte - pte0) / n as f64]
}

fn gv_burst_once(n: usize) -> Duration {
    let t = Instant::now();
    let hs: Vec<_> = (0..n).map(|i| gvthread::spawn(move |_| i)).collect();
    for h in hs {
        std::hint::black_box(h.join().unwrap());
    }
    t.elapsed()
}

fn gv_burst(n: usize, workers: usize) -> Vec<f64> {
    let mut rt = Runtime::new(config(workers).max_gvthreads(n + 16));
    let (a, b) = rt.block_on(move || (gv_burst_once(n), gv_burst_once(n)));
    vec![per(a, n), per(b, n)]
}

fn gv_batch(n: usize) -> Vec<f64> {
    let mut rt = Runtime::new(config(1));
    let d = rt.block_on(move || {
        gv_burst_once(1000);
        let t = Instant::now();
        for _ in 0..n / 1000 {
            gv_burst_once(1000);
        }
        t.elapsed()
    });
    vec![per(d, n / 1000 * 1000)]
}

// ---------------------------------------------------------------- tokio

fn tokio_parked(n: usize) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (rss0, pte0) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
    let started = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut txs = Vec::with_capacity(n);
    let mut joins = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = started.clone();
        txs.push(tx);
        joins.push(rt.spawn(async move {
            st.fetch_add(1, Ordering::Relaxed);
            let _ = rx.await;
        }));
    }
    while started.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(1));
    }
    let create = t.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let (rss, pte) = (status_bytes("VmRSS"), status_bytes("VmPTE"));
    drop(txs);
    rt.block_on(async {
        for j in joins {
            j.await.unwrap();
        }
    });
    vec![per(create, n), (rss - rss0) / n as f64, (pte - pte0) / n as f64]
}

async fn tokio_burst_once(n: usize) -> Duration {
    let t = Instant::now();
    let hs: Vec<_> = (0..n).map(|i| tokio::spawn(async move { i })).collect();
    for h in hs {
        std::hint::black_box(h.await.unwrap());
    }
    t.elapsed()
}

fn tokio_burst(n: usize) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (a, b) = rt.block_on(async { (tokio_burst_once(n).await, tokio_burst_once(n).await) });
    vec![per(a, n), per(b, n)]
}

fn tokio_batch(n: usize) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let d = rt.block_on(async {
        tokio_burst_once(1000).await;
        let t = Instant::now();
        for _ in 0..n / 1000 {
            tokio_burst_once(1000).await;
        }
        t.elapsed()
    });
    vec![per(d, n / 1000 * 1000)]
}

// ---------------------------------------------------------------- driver

fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let n: usize = parts[2].parse().unwrap();
    let r = match (parts[0], parts[1]) {
        ("gvthread", "parked") => gv_parked(n, None),
        ("gvthread", "parked256k") => gv_parked(n, Some(256 * 1024)),
        ("gvthread", "burst1") => gv_burst(n, 1),
        ("gvthread", "burst2") => gv_burst(n, 2),
        ("gvthread", "batch") => gv_batch(n),
        ("tokio", "parked") => tokio_parked(n),
        ("tokio", "burst1") => tokio_burst(n),
        ("tokio", "batch") => tokio_batch(n),
        other => panic!("unknown child {other:?}"),
    };
    let _ = Builder::new(); // the Builder is part of what this bench covers
    println!("RESULT {}", r.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" "));
}

fn parse(out: &[u8]) -> Option<Vec<f64>> {
    let s = String::from_utf8_lossy(out);
    let line = s.lines().find_map(|l| l.strip_prefix("RESULT "))?;
    Some(line.split_whitespace().filter_map(|v| v.parse().ok()).collect())
}

/// A child run of one runtime's workload: its figures, `None` if it failed.
type Sample<'a> = Box<dyn FnMut() -> Option<Vec<f64>> + 'a>;

/// Runs every workload of `samples` once per round, `RUNS` rounds, taking
/// turns, and returns each one's median per column (`None` if any of its
/// runs failed) and the host's cross-core round trip measured before each
/// round. Taking turns puts every runtime into each host state the rounds
/// meet (see `benches::host`), where medians of consecutive runs of one
/// runtime could compare a slow host state against a fast one.
fn interleaved(samples: &mut [Sample<'_>]) -> (Vec<Option<Vec<f64>>>, Vec<f64>) {
    let mut rows: Vec<Vec<Option<Vec<f64>>>> = vec![Vec::new(); samples.len()];
    let mut probes = Vec::new();
    for _ in 0..RUNS {
        probes.push(benches::host::cross_core_round_trip_ns());
        for (i, sample) in samples.iter_mut().enumerate() {
            rows[i].push(sample());
        }
    }
    (rows.iter().map(|r| median(r)).collect(), probes)
}

/// Per column, the median of `rows`; `None` if any row is missing.
fn median(rows: &[Option<Vec<f64>>]) -> Option<Vec<f64>> {
    let rows: Vec<&Vec<f64>> = rows.iter().map(Option::as_ref).collect::<Option<_>>()?;
    let cols = rows.first()?.len();
    Some(
        (0..cols)
            .map(|c| {
                let mut v: Vec<f64> = rows.iter().filter_map(|r| r.get(c).copied()).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
            .collect(),
    )
}

/// The host probes of a section, for the line under its table.
fn host_line(probes: &[f64]) -> String {
    let p: Vec<String> = probes.iter().map(|p| format!("{p:.0}")).collect();
    format!("host: cross-core round trip before each round, ns: {}", p.join(", "))
}

fn rust_child(spec: &str) -> Option<Vec<f64>> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe).env(CHILD_VAR, spec).output().ok()?;
    if !out.status.success() {
        eprintln!("child {spec} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    parse(&out.stdout)
}

fn go_child(args: &[&str]) -> Option<Vec<f64>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/go/spawn.go");
    let bin = std::env::temp_dir().join("gvthread-bench-spawn-go");
    if !bin.exists() {
        let ok = std::process::Command::new("go").args(["build", "-o"]).arg(&bin).arg(path).status().ok()?;
        if !ok.success() {
            return None;
        }
    }
    let out = std::process::Command::new(&bin).args(args).output().ok()?;
    parse(&out.stdout)
}

fn fmt(v: Option<&Vec<f64>>, i: usize) -> String {
    v.and_then(|v| v.get(i)).map_or("—".into(), |x| format!("{x:.0}"))
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_VAR) {
        child(&spec);
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` and criterion-style listing: nothing to do
    }
    let n: usize = std::env::var("GVTHREAD_SPAWN_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let ns = n.to_string();
    let _ = std::fs::remove_file(std::env::temp_dir().join("gvthread-bench-spawn-go"));
    println!("spawn workloads, n = {n}, median of {RUNS} child processes each, the runtimes taking turns");
    let rows = std::env::var("GVTHREAD_SPAWN_ROWS").unwrap_or_else(|_| "parked,burst,batch".into());
    if rows.contains("parked") {
        parked_rows(n, &ns);
    }
    if rows.contains("burst") {
        burst_rows(n, &ns);
    }
    if rows.contains("batch") {
        batch_rows(n, &ns);
    }
}

fn parked_rows(n: usize, ns: &str) {
    let (r, probes) = interleaved(&mut [
        Box::new(|| rust_child(&format!("gvthread:parked:{n}"))),
        Box::new(|| rust_child(&format!("gvthread:parked256k:{n}"))),
        Box::new(|| go_child(&["parked", ns])),
        Box::new(|| rust_child(&format!("tokio:parked:{n}"))),
    ]);
    println!("\n| {n} parked (2 workers) | create ns | resident B | page tables B |");
    println!("|---|---|---|---|");
    for (name, r) in ["gvthread 16 MiB", "gvthread 256 KiB", "go", "tokio (multi-thread)"].iter().zip(&r) {
        println!("| {name} | {} | {} | {} |", fmt(r.as_ref(), 0), fmt(r.as_ref(), 1), fmt(r.as_ref(), 2));
    }
    println!("{}", host_line(&probes));
}

fn burst_rows(n: usize, ns: &str) {
    let (r, probes) = interleaved(&mut [
        Box::new(|| rust_child(&format!("gvthread:burst1:{n}"))),
        Box::new(|| go_child(&["burst", ns, "1"])),
        Box::new(|| rust_child(&format!("tokio:burst1:{n}"))),
        Box::new(|| rust_child(&format!("gvthread:burst2:{n}"))),
        Box::new(|| go_child(&["burst", ns, "2"])),
    ]);
    println!("\n| {n} spawned then joined | first burst ns | second burst ns |");
    println!("|---|---|---|");
    let names =
        ["gvthread, 1 worker", "go, GOMAXPROCS=1", "tokio current-thread", "gvthread, 2 workers", "go, GOMAXPROCS=2"];
    for (name, r) in names.iter().zip(&r) {
        println!("| {name} | {} | {} |", fmt(r.as_ref(), 0), fmt(r.as_ref(), 1));
    }
    println!("{}", host_line(&probes));
}

fn batch_rows(n: usize, ns: &str) {
    let (r, probes) = interleaved(&mut [
        Box::new(|| rust_child(&format!("gvthread:batch:{n}"))),
        Box::new(|| go_child(&["batch", ns])),
        Box::new(|| rust_child(&format!("tokio:batch:{n}"))),
    ]);
    println!("\n| spawn+join in batches of 1,000, 1 worker | ns per task |");
    println!("|---|---|");
    for (name, r) in ["gvthread", "go", "tokio current-thread"].iter().zip(&r) {
        println!("| {name} | {} |", fmt(r.as_ref(), 0));
    }
    println!("{}", host_line(&probes));
}
