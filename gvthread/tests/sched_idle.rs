//! Idle workers sleep in the kernel, and wake at once for new work.

mod common;

use std::time::Duration;

/// States ('R', 'S', ...) of this process's threads whose name starts with `prefix`.
fn thread_states(prefix: &str) -> Vec<char> {
    let mut states = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Format: pid (comm) S ...; comm may contain spaces, so split after ')'.
        if let Some(rest) = stat.rsplit_once(')')
            && let Some(c) = rest.1.trim_start().chars().next()
        {
            states.push(c);
        }
    }
    states
}

#[test]
fn idle_workers_sleep_and_wake_for_new_work() {
    let _w = common::watchdog("idle_workers_sleep", Duration::from_secs(60));
    let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    rt.handle().spawn(|_| ()).join().unwrap();
    // Within a few seconds every worker must be seen asleep at the same time
    // (a spinning idle loop would always show 'R').
    let mut all_asleep = false;
    for _ in 0..500 {
        let s = thread_states("gvthread-worke");
        if s.len() == 2 && s.iter().all(|&c| c == 'S') {
            all_asleep = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(all_asleep, "idle workers never slept: {:?}", thread_states("gvthread-worke"));
    // And a spawn from outside reaches a sleeping worker.
    for i in 0..100 {
        assert_eq!(rt.handle().spawn(move |_| i).join().unwrap(), i);
    }
}
