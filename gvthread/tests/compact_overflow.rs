//! Overflow detection after a compaction: a GVThread whose stack was
//! compacted (with the default class its guard marker removed and the
//! page-table ranges it shares with compacted neighbours emptied; with a
//! 256 KiB class the marker kept) and restored still hits its guard page
//! when it recurses without bound. Runs in a child process that must abort
//! with the overflow report.

mod common;

use std::time::Duration;

use gvthread::{Handle, Runtime, SchedulerConfig};

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

/// `stack`: the runtime's stack size (every GVThread's), `None` for the
/// default.
fn overflow_after_restore_in_child(stack: Option<usize>) {
    let mut config = SchedulerConfig::default().num_workers(2);
    if let Some(bytes) = stack {
        config = config.stack_size(bytes);
    }
    // SAFETY: only the GVThreads themselves touch their stacks.
    let mut rt = Runtime::new(unsafe { config.compact_idle_after(Some(Duration::from_millis(1))) });
    rt.block_on(move || {
        // Every GVThread parks in `recv` (no periodic wake-ups), so all of
        // them stay compacted once compacted. The neighbours' receives end
        // when `stay` is dropped.
        let (stay, parked) = gvthread::channel::<()>(0);
        // Neighbours on both sides, compacted too.
        let mut hs = Vec::new();
        for _ in 0..3 {
            let rx = parked.clone();
            hs.push(gvthread::spawn(move |_| rx.recv().is_err()));
        }
        let (go, victim_rx) = gvthread::channel::<()>(0);
        let victim = gvthread::spawn(move |_| {
            victim_rx.recv().unwrap();
            let id = gvthread::current_id().expect("inside a GVThread");
            eprintln!("expect: GVThread {}.{}", id.slot(), id.generation());
            deep_big(0)
        });
        for _ in 0..3 {
            let rx = parked.clone();
            hs.push(gvthread::spawn(move |_| rx.recv().is_err()));
        }
        drop(parked);
        let h = Handle::current();
        let mut seen = h.metrics();
        for _ in 0..20_000 {
            if seen.compacted_gvthreads >= 7 {
                break;
            }
            gvthread::sleep(Duration::from_millis(1));
            seen = h.metrics();
        }
        assert!(seen.compacted_gvthreads >= 7, "{seen:?}");
        go.send(()).unwrap();
        let _ = victim.join();
        drop(stay);
        drop(hs);
    });
    unreachable!("the overflow must abort the process");
}

/// Runs the child as test `name` and checks its overflow report names the
/// victim and `size` (as the report prints it).
fn check_overflow_report(name: &'static str, stack: Option<usize>, size: &str) {
    let _w = common::watchdog(name, Duration::from_secs(60));
    match common::crashing_child(name, Duration::from_secs(50)) {
        None => overflow_after_restore_in_child(stack),
        Some(stderr) => {
            let expected = stderr
                .lines()
                .find_map(|l| l.strip_prefix("expect: "))
                .unwrap_or_else(|| panic!("child printed no id; stderr:\n{stderr}"));
            let message = format!("gvthread: stack overflow in {expected} ({size} stack)");
            assert!(stderr.contains(&message), "missing `{message}`; stderr:\n{stderr}");
        }
    }
}

#[test]
fn overflow_after_restore_is_reported() {
    check_overflow_report("overflow_after_restore_is_reported", None, "16 MiB");
}

/// A small class keeps its guard marker through the compaction (see
/// `memory/compact.rs`, `KEEP_TABLES_MAX`): the kept marker still catches
/// the overflow.
#[test]
fn overflow_after_restore_of_a_small_class_is_reported() {
    check_overflow_report("overflow_after_restore_of_a_small_class_is_reported", Some(256 * 1024), "256 KiB");
}
