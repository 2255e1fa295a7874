//! Stack overflow in a GVThread is reported by name before the process
//! aborts. Each scenario runs in a child process (the test binary re-executed
//! for one test), which must die; the parent checks its standard error.

mod common;

use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

/// Recursion with a 64 KiB frame: each call moves the stack pointer by more
/// than a page, so only stack probes make it hit the guard page.
#[inline(never)]
fn deep_big(depth: u64) -> u64 {
    let mut frame = [0u8; 64 * 1024];
    std::hint::black_box(&mut frame);
    frame[0] = depth as u8;
    // Opaque condition: recursion the compiler cannot prove unconditional.
    let below = if std::hint::black_box(true) { deep_big(depth + 1) } else { 0 };
    std::hint::black_box(&frame);
    below + frame[1] as u64
}

/// Recursion with a small frame.
#[inline(never)]
fn deep_small(depth: u64) -> u64 {
    let mut frame = [0u8; 64];
    std::hint::black_box(&mut frame);
    let below = if std::hint::black_box(true) { deep_small(depth + 1) } else { 0 };
    std::hint::black_box(&frame);
    below + frame[1] as u64 + depth
}

/// Child side: a few parked neighbours first (so the overflowing GVThread's
/// slot lies above theirs), then the overflow. Prints the id it expects in
/// the message.
fn overflow_in_child(recurse: fn(u64) -> u64) {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    rt.block_on(move || {
        let (tx, rx) = gvthread::channel::<()>(1);
        let neighbours: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                gvthread::spawn(move |_| {
                    let _ = rx.recv();
                })
            })
            .collect();
        let h = gvthread::spawn(move |_| {
            let id = gvthread::current_id().expect("inside a GVThread");
            eprintln!("expect: GVThread {}.{}", id.slot(), id.generation());
            recurse(0)
        });
        let _ = h.join();
        drop((tx, neighbours));
    });
    unreachable!("the overflow must abort the process");
}

fn check_report(stderr: &str) {
    let expected = stderr
        .lines()
        .find_map(|l| l.strip_prefix("expect: "))
        .unwrap_or_else(|| panic!("child printed no id; stderr:\n{stderr}"));
    let message = format!("gvthread: stack overflow in {expected} (16 MiB stack)");
    assert!(stderr.contains(&message), "missing `{message}`; stderr:\n{stderr}");
}

#[test]
fn overflow_with_large_frames_is_reported() {
    let _w = common::watchdog("overflow_with_large_frames_is_reported", Duration::from_secs(60));
    match common::crashing_child("overflow_with_large_frames_is_reported", Duration::from_secs(50)) {
        None => overflow_in_child(deep_big),
        Some(stderr) => check_report(&stderr),
    }
}

#[test]
fn overflow_with_small_frames_is_reported() {
    let _w = common::watchdog("overflow_with_small_frames_is_reported", Duration::from_secs(60));
    match common::crashing_child("overflow_with_small_frames_is_reported", Duration::from_secs(50)) {
        None => overflow_in_child(deep_small),
        Some(stderr) => check_report(&stderr),
    }
}

/// A fault outside any guard page still reaches the previous handler (std's,
/// then the default action): the process dies of SIGSEGV, not SIGABRT, and
/// without our message.
#[test]
fn other_segfaults_are_passed_on() {
    const NAME: &str = "other_segfaults_are_passed_on";
    let _w = common::watchdog(NAME, Duration::from_secs(60));
    if std::env::var(common::CRASH_VAR).as_deref() == Ok(NAME) {
        let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
        rt.block_on(|| {
            // SAFETY: not safe at all: this deliberately faults on an
            // unmapped address to test the fallback path.
            unsafe { std::ptr::read_volatile(std::ptr::without_provenance::<u64>(16)) }
        });
        unreachable!();
    }
    let out = common::test_binary()
        .args([NAME, "--exact", "--nocapture", "--test-threads", "1"])
        .env(common::CRASH_VAR, NAME)
        .output()
        .expect("run child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGSEGV),
        "status {}; stderr:\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("stack overflow in GVThread"), "stderr:\n{stderr}");
}

/// A slot reused after its chunk was remapped (page tables given back, guard
/// markers gone) gets its guard page back: an overflow there is reported too.
#[test]
fn overflow_in_a_slot_of_a_remapped_chunk_is_reported() {
    const NAME: &str = "overflow_in_a_slot_of_a_remapped_chunk_is_reported";
    let _w = common::watchdog(NAME, Duration::from_secs(90));
    match common::crashing_child(NAME, Duration::from_secs(80)) {
        None => {
            let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
            rt.block_on(|| {
                let park_many = |n: usize| {
                    let (tx, rx) = gvthread::channel::<()>(0);
                    let hs: Vec<_> = (0..n)
                        .map(|_| {
                            let rx = rx.clone();
                            gvthread::spawn(move |_| {
                                let _ = rx.recv();
                            })
                        })
                        .collect();
                    (tx, hs)
                };
                // A peak of 4,000 slots (about 16 chunks), then all free.
                let (tx, hs) = park_many(4_000);
                gvthread::sleep(Duration::from_millis(50));
                let peak = common::vm_pte_kib();
                drop(tx);
                for h in hs {
                    h.join().unwrap();
                }
                // Wait until the timer thread trimmed them and remapped whole chunks.
                let start = std::time::Instant::now();
                while common::vm_pte_kib() * 2 > peak && start.elapsed() < Duration::from_secs(30) {
                    gvthread::sleep(Duration::from_millis(20));
                }
                eprintln!("VmPTE: peak {peak} KiB, now {} KiB", common::vm_pte_kib());
                // Use up the slots that kept their pages, so the next spawn
                // comes from a remapped chunk.
                let (_tx2, _fillers) = park_many(1_200);
                let h = gvthread::spawn(|_| {
                    let id = gvthread::current_id().expect("inside a GVThread");
                    eprintln!("expect: GVThread {}.{}", id.slot(), id.generation());
                    deep_small(0)
                });
                let _ = h.join();
            });
            unreachable!("the overflow must abort the process");
        }
        Some(stderr) => check_report(&stderr),
    }
}

/// A named GVThread with a small stack class: the report names it and its
/// class size.
#[test]
fn overflow_report_names_the_gvthread_and_its_stack_size() {
    const NAME: &str = "overflow_report_names_the_gvthread_and_its_stack_size";
    let _w = common::watchdog(NAME, Duration::from_secs(60));
    match common::crashing_child(NAME, Duration::from_secs(50)) {
        None => {
            let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
            rt.block_on(|| {
                let h = gvthread::Builder::new()
                    .name("deep-parser".to_string())
                    .stack_size(200 * 1024)
                    .spawn(|_| deep_small(0))
                    .expect("spawn");
                let _ = h.join();
            });
            unreachable!("the overflow must abort the process");
        }
        Some(stderr) => {
            assert!(
                stderr.contains("gvthread: stack overflow in GVThread ")
                    && stderr.contains(" 'deep-parser' (256 KiB stack)"),
                "stderr:\n{stderr}"
            );
        }
    }
}

/// Issue 10 item 6: keep a `Handle` of runtime A, drop A, build B, drop the
/// handle (which drops A's slot pool): B's overflow is still reported.
#[test]
fn overflow_reported_after_an_earlier_runtimes_pool_is_dropped() {
    const NAME: &str = "overflow_reported_after_an_earlier_runtimes_pool_is_dropped";
    let _w = common::watchdog(NAME, Duration::from_secs(60));
    match common::crashing_child(NAME, Duration::from_secs(50)) {
        None => {
            let a = Runtime::new(SchedulerConfig::default().num_workers(1));
            let handle = a.handle();
            drop(a);
            let mut b = Runtime::new(SchedulerConfig::default().num_workers(1));
            drop(handle);
            b.block_on(|| {
                let h = gvthread::spawn(|_| {
                    let id = gvthread::current_id().expect("inside a GVThread");
                    eprintln!("expect: GVThread {}.{}", id.slot(), id.generation());
                    deep_small(0)
                });
                let _ = h.join();
            });
            unreachable!("the overflow must abort the process");
        }
        Some(stderr) => check_report(&stderr),
    }
}
