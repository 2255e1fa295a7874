//! `SchedulerConfig::realtime_timer_thread`: the timer thread runs with the
//! real-time policy when asked and when Linux allows it, never otherwise.

mod common;

use std::time::Duration;

use gvthread::{Runtime, SchedulerConfig};

const LIMIT: Duration = Duration::from_secs(60);

/// Threads of this process that run with `SCHED_FIFO` now.
fn fifo_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        // SAFETY: sched_getscheduler only reads the policy of the thread named
        // by `tid` (-1 if it has exited meanwhile).
        .filter(|&tid| unsafe { libc::sched_getscheduler(tid) } == libc::SCHED_FIFO)
        .count()
}

/// [`fifo_threads`] once it equals `expected`, or after 20 s. A timer thread
/// that used over a quarter of a CPU in its last 10 ms runs the next 10 ms
/// in the normal policy (`timer/policy.rs`); a thread just started can, under
/// an emulator translating its code as it first runs (qemu-user), and it
/// takes the real-time policy back before its next long sleep.
fn fifo_threads_settled(expected: usize) -> usize {
    let started = std::time::Instant::now();
    loop {
        let n = fifo_threads();
        if n == expected || started.elapsed() > Duration::from_secs(20) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether Linux lets a thread of this process take `SCHED_FIFO` (tried on
/// a thread of its own, which then ends).
fn may_use_realtime() -> bool {
    std::thread::spawn(|| {
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: a valid sched_param, applied to the calling thread only.
        unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
    })
    .join()
    .unwrap()
}

#[test]
fn the_timer_thread_is_real_time_only_when_asked_and_allowed() {
    // In a process of its own: other tests' runtimes would have timer threads too.
    if !common::isolated("the_timer_thread_is_real_time_only_when_asked_and_allowed", LIMIT) {
        return;
    }
    let allowed = may_use_realtime();
    assert_eq!(fifo_threads(), 0, "no real-time thread before any runtime");
    {
        let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1).realtime_timer_thread(true));
        assert_eq!(rt.metrics().realtime_timer_thread, allowed, "the metric says whether it was granted");
        let expected = usize::from(allowed);
        assert_eq!(fifo_threads_settled(expected), expected, "the timer thread alone, if granted");
        // Its timers fire as usual.
        let slept = rt.block_on(|| {
            let t = std::time::Instant::now();
            gvthread::sleep(Duration::from_millis(2));
            t.elapsed()
        });
        assert!(slept >= Duration::from_millis(2), "woke after {slept:?}");
    }
    assert_eq!(fifo_threads(), 0, "the timer thread ended with its runtime");
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    assert!(!rt.metrics().realtime_timer_thread, "not asked: never");
    assert_eq!(rt.block_on(|| gvthread::spawn(|_| 5).join().unwrap()), 5);
    assert_eq!(fifo_threads(), 0, "not asked: no real-time thread");
}

#[test]
fn a_real_time_timer_thread_turns_normal_in_a_timer_storm_and_back_after() {
    if !common::isolated("a_real_time_timer_thread_turns_normal_in_a_timer_storm_and_back_after", LIMIT) {
        return;
    }
    if !may_use_realtime() {
        eprintln!("skipped: this process may not use a real-time policy");
        return;
    }
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2).realtime_timer_thread(true));
    assert_eq!(fifo_threads_settled(1), 1, "the timer thread is real-time once idle");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let turned_normal = rt.block_on(move || {
        // 5,000 GVThreads sleeping 1 ms in a loop: more timers than the
        // timer thread fires with a quarter of a CPU.
        let sleepers = common::spawn_sleepers(5_000, &s);
        let started = std::time::Instant::now();
        let mut turned_normal = false;
        while !turned_normal && started.elapsed() < Duration::from_secs(20) {
            gvthread::sleep(Duration::from_millis(2));
            turned_normal = fifo_threads() == 0;
        }
        stop.store(true, Ordering::Relaxed);
        for h in sleepers {
            h.join().unwrap();
        }
        turned_normal
    });
    assert!(turned_normal, "the timer thread stayed real-time through the storm");
    // Idle now: its next long sleep takes the real-time policy back.
    assert_eq!(fifo_threads_settled(1), 1, "the timer thread did not become real-time again once idle");
}
