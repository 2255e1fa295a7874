//! A backtrace taken inside a GVThread (std's, through the C library's
//! unwinder) ends at the trampoline that starts every GVThread stack: it
//! holds the GVThread's own frames and nothing from above the stack.

mod common;

use std::time::Duration;

#[inline(never)]
fn arch_backtrace_marker() -> String {
    std::hint::black_box(std::backtrace::Backtrace::force_capture().to_string())
}

/// The lines of a rendered backtrace that start a frame (`  12: name`).
fn frame_names(bt: &str) -> Vec<&str> {
    bt.lines()
        .filter_map(|l| {
            let (n, name) = l.trim_start().split_once(": ")?;
            n.parse::<usize>().ok().map(|_| name)
        })
        .collect()
}

#[test]
fn backtraces_in_gvthreads_end_at_the_trampoline() {
    let _w = common::watchdog("backtraces_in_gvthreads_end_at_the_trampoline", Duration::from_secs(120));
    let mut rt = common::rt(1);
    let bt = rt.block_on(|| gvthread::spawn(|_| arch_backtrace_marker()).join().unwrap());
    let names = frame_names(&bt);
    assert!(names.iter().any(|n| n.contains("arch_backtrace_marker")), "{bt}");
    let entry = names
        .iter()
        .rposition(|n| n.trim_end().ends_with("gvthread::task::spawn::entry"))
        .unwrap_or_else(|| panic!("no GVThread entry frame in:\n{bt}"));
    // Below the entry function there is only the trampoline (which some
    // unwinders list and some do not), never frames read from above the
    // stack.
    let below = &names[entry + 1..];
    assert!(below.len() <= 1, "frames past the GVThread's entry: {below:?}\n{bt}");
    assert!(below.iter().all(|n| n.contains("trampoline")), "{bt}");
}
