//! Scale: N GVThreads alive at once, each parked on a channel `recv`, then
//! all released and joined; optionally a churn of spawn/exit cycles.
//!
//! ```text
//! cargo run --release --example stress -- 1000000          # 1M parked GVThreads
//! cargo run --release --example stress -- 2097152          # the default max_gvthreads
//! cargo run --release --example stress -- churn 10000000   # 10M spawn/exit cycles
//! GVTHREAD_STACK_SIZE=262144 cargo run --release --example stress -- 1000000   # 256 KiB stacks
//! ```
//!
//! Memory figures come from `/proc/self`: resident set (`VmRSS`), page tables
//! (`VmPTE` in `status`) and the number of kernel mappings (lines of `maps`),
//! each read before the spawns and again while all GVThreads are parked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Runtime, SchedulerConfig};

/// Resident bytes of this process (`VmRSS` in `/proc/self/status`).
fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// A `kB` line of `/proc/self/status` (`VmPTE`, `VmRSS`...), in bytes.
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Kernel mappings (VMAs) of this process.
fn vma_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

struct Snapshot {
    rss: u64,
    pte: u64,
    vmas: usize,
}

fn snapshot() -> Snapshot {
    Snapshot { rss: rss_bytes(), pte: status_bytes("VmPTE"), vmas: vma_count() }
}

fn per(bytes: u64, before: u64, n: usize) -> f64 {
    bytes.saturating_sub(before) as f64 / n as f64
}

/// `n` GVThreads parked on one channel, released by closing it.
///
/// By default they are spawned by a GVThread (the usual case: spawns go to the
/// spawner's worker, no cross-thread wake-up per spawn). With
/// `GVTHREAD_SPAWN_FROM_OUTSIDE=1` they are spawned from this plain thread
/// through a `Handle`: every spawn then goes through the global queue and may
/// wake a sleeping worker, as from any outside thread.
fn parked(n: usize, workers: usize) {
    let outside = std::env::var_os("GVTHREAD_SPAWN_FROM_OUTSIDE").is_some();
    let mut config = SchedulerConfig::default().num_workers(workers).max_gvthreads(n.max(1) + 1);
    if let Some(bytes) = std::env::var("GVTHREAD_STACK_SIZE").ok().and_then(|v| v.parse().ok()) {
        config = config.stack_size(bytes);
    }
    let mut rt = Runtime::new(config);
    let handle = rt.handle();
    let (tx, rx) = gvthread::channel::<()>(1);
    let started = Arc::new(AtomicUsize::new(0));

    let before = snapshot();
    let spawn_all = {
        let started = started.clone();
        move |spawn: &dyn Fn(Box<dyn FnOnce() + Send>) -> gvthread::JoinHandle<()>| {
            let t0 = Instant::now();
            let mut joins = Vec::with_capacity(n);
            for _ in 0..n {
                let rx = rx.clone();
                let started = started.clone();
                joins.push(spawn(Box::new(move || {
                    started.fetch_add(1, Ordering::Relaxed);
                    // Parks until the sender is dropped.
                    let _ = rx.recv();
                })));
            }
            (joins, t0.elapsed())
        }
    };
    let t0 = Instant::now();
    let (joins, spawned) = if outside {
        spawn_all(&|f| handle.spawn(move |_| f()))
    } else {
        rt.block_on(move || spawn_all(&|f| gvthread::spawn(move |_| f())))
    };
    while started.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Let the last ones finish parking (a few frames past the counter).
    std::thread::sleep(Duration::from_millis(200));
    let all_parked = t0.elapsed();
    let live = snapshot();
    assert_eq!(handle.live_gvthreads(), n);

    let t1 = Instant::now();
    drop(tx);
    for j in joins {
        j.join().expect("GVThread failed");
    }
    let released = t1.elapsed();
    let after = snapshot();

    let kib = |b: f64| b / 1024.0;
    println!("gvthreads alive at once:    {n}");
    println!("worker threads:             {workers}");
    println!(
        "spawn calls ({}):   {:.3} s ({:.0} ns per GVThread)",
        if outside { "outside thread" } else { "in a GVThread " },
        spawned.as_secs_f64(),
        spawned.as_nanos() as f64 / n as f64
    );
    println!(
        "spawned and parked:         {:.3} s ({:.0} ns per GVThread, includes a 0.2 s settle)",
        all_parked.as_secs_f64(),
        (all_parked - Duration::from_millis(200)).as_nanos() as f64 / n as f64
    );
    println!(
        "released and joined:        {:.3} s ({:.0} ns per GVThread)",
        released.as_secs_f64(),
        released.as_nanos() as f64 / n as f64
    );
    println!(
        "resident memory:            {:.1} MiB -> {:.1} MiB: {:.0} bytes ({:.2} KiB) per GVThread",
        before.rss as f64 / 1048576.0,
        live.rss as f64 / 1048576.0,
        per(live.rss, before.rss, n),
        kib(per(live.rss, before.rss, n))
    );
    println!(
        "page tables (VmPTE):        {:.1} MiB -> {:.1} MiB: {:.0} bytes ({:.2} KiB) per GVThread",
        before.pte as f64 / 1048576.0,
        live.pte as f64 / 1048576.0,
        per(live.pte, before.pte, n),
        kib(per(live.pte, before.pte, n))
    );
    println!(
        "resident + page tables:     {:.0} bytes ({:.2} KiB) per GVThread",
        per(live.rss + live.pte, before.rss + before.pte, n),
        kib(per(live.rss + live.pte, before.rss + before.pte, n))
    );
    println!("kernel mappings (VMAs):     {} before, {} with all parked", before.vmas, live.vmas);
    println!("right after the joins:      {:.1} MiB resident", after.rss as f64 / 1048576.0);
    // The scavenger keeps the recent peak warm for up to two 5 s windows,
    // then gives pages and page tables back gradually (memory/scavenge.rs):
    // wait until resident memory has stopped falling for 2 s after that
    // (what stays is mostly heap the allocator keeps), or 60 s.
    let t2 = Instant::now();
    let mut last = after.rss;
    let mut flat = 0;
    while t2.elapsed() < Duration::from_secs(60) && (t2.elapsed() < Duration::from_secs(13) || flat < 4) {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss_bytes();
        flat = if now >= last { flat + 1 } else { 0 };
        last = now;
    }
    println!(
        "free slots given back:      {:.1} MiB resident, {:.1} MiB page tables, after {:.1} s",
        last as f64 / 1048576.0,
        status_bytes("VmPTE") as f64 / 1048576.0,
        t2.elapsed().as_secs_f64()
    );
    drop(rt);
}

/// `cycles` spawn/exit cycles, `batch` at a time, reporting RSS as it goes.
fn churn(cycles: usize, workers: usize) {
    const BATCH: usize = 1000;
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(workers));
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let report_every = (cycles / 10).max(BATCH);
    let (tx, rx) = std::sync::mpsc::channel();
    rt.block_on(move || {
        let mut done = 0;
        let mut joins = Vec::with_capacity(BATCH);
        while done < cycles {
            let n = BATCH.min(cycles - done);
            joins.extend((0..n).map(|i| gvthread::spawn(move |_| std::hint::black_box(i))));
            for j in joins.drain(..) {
                j.join().expect("GVThread failed");
            }
            done += n;
            if done % report_every < BATCH {
                let _ = tx.send((done, rss_bytes()));
            }
        }
    });
    let elapsed = t0.elapsed();
    samples.extend(rx.try_iter());
    println!("spawn/exit cycles:          {cycles} ({BATCH} alive at a time, {workers} workers)");
    println!(
        "time:                       {:.3} s ({:.0} ns per cycle)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / cycles as f64
    );
    for (done, rss) in &samples {
        println!("  after {done:>10} cycles: {:.1} MiB resident", *rss as f64 / 1048576.0);
    }
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        println!("RSS growth from first to last sample: {:.1} KiB", (last.1 as f64 - first.1 as f64) / 1024.0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workers = std::env::var("GVTHREAD_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    match args.first().map(String::as_str) {
        Some("churn") => {
            let cycles = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
            churn(cycles, workers);
        }
        other => {
            let n = other.and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
            parked(n, workers);
        }
    }
}
