//! `Handle::dump`: parked GVThreads are listed with what they wait on and a
//! symbolized backtrace unwound from their saved context; dumping never
//! loses or invents a wake; the opt-in SIGQUIT dump prints on stderr.

mod common;

use std::sync::Arc;
use std::time::Duration;

use gvthread::{Runtime, SchedMutex, SchedulerConfig};

#[inline(never)]
fn dump_test_waits_on_channel(rx: gvthread::Receiver<u32>) -> u32 {
    let v = rx.recv().unwrap();
    std::hint::black_box(v)
}

#[inline(never)]
fn dump_test_waits_on_mutex(m: Arc<SchedMutex<u32>>) -> u32 {
    let v = *m.lock();
    std::hint::black_box(v)
}

#[inline(never)]
fn dump_test_waits_on_join(h: gvthread::JoinHandle<u32>) -> u32 {
    let v = h.join().unwrap();
    std::hint::black_box(v)
}

#[inline(never)]
fn dump_test_sleeps(token: gvthread::CancellationToken) -> u32 {
    while !token.is_cancelled() {
        gvthread::sleep(Duration::from_millis(50));
    }
    std::hint::black_box(4)
}

#[inline(never)]
fn dump_test_waits_on_future(rx: futures::channel::oneshot::Receiver<u32>) -> u32 {
    let v = gvthread_futures::block_on(rx).unwrap();
    std::hint::black_box(v)
}

/// Dumps until `ready(dump)` holds (bounded), returning the last dump.
fn dump_until(rt: &Runtime, ready: impl Fn(&str) -> bool) -> String {
    for _ in 0..2000 {
        let d = rt.handle().dump();
        if ready(&d) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the dump never showed the expected state:\n{}", rt.handle().dump());
}

#[test]
fn parked_gvthreads_show_their_functions_and_reasons() {
    let _w = common::watchdog("parked_gvthreads_show_their_functions_and_reasons", Duration::from_secs(120));
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let h = rt.handle();

    let (tx, rx) = gvthread::channel::<u32>(0);
    let on_channel = h.spawn(move |_| dump_test_waits_on_channel(rx));

    let mutex = Arc::new(SchedMutex::new(2));
    let guard_holder = {
        let m = mutex.clone();
        let (locked_tx, locked_rx) = gvthread::channel::<()>(1);
        let (release_tx, release_rx) = gvthread::channel::<()>(1);
        let holder = h.spawn(move |_| {
            let _g = m.lock();
            locked_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        locked_rx.recv().unwrap();
        (holder, release_tx)
    };
    let m = mutex.clone();
    let on_mutex = h.spawn(move |_| dump_test_waits_on_mutex(m));

    let (gate_tx, gate_rx) = gvthread::channel::<u32>(0);
    let inner = h.spawn(move |_| gate_rx.recv().unwrap());
    let on_join = h.spawn(move |_| dump_test_waits_on_join(inner));

    let sleeper = h.spawn(dump_test_sleeps);

    let (fut_tx, fut_rx) = futures::channel::oneshot::channel::<u32>();
    let on_future = h.spawn(move |_| dump_test_waits_on_future(fut_rx));

    let names = [
        "dump_test_waits_on_channel",
        "dump_test_waits_on_mutex",
        "dump_test_waits_on_join",
        "dump_test_sleeps",
        "dump_test_waits_on_future",
    ];
    let dump = dump_until(&rt, |d| names.iter().all(|n| d.contains(n)));
    if std::env::var_os("GVTHREAD_PRINT_DUMP").is_some() {
        eprintln!("{dump}");
    }
    for reason in ["parked on channel", "parked on mutex", "parked on join", "parked on sleep", "parked on future"] {
        assert!(dump.contains(reason), "missing `{reason}` in:\n{dump}");
    }
    assert!(dump.contains("until +"), "the sleep's deadline is shown:\n{dump}");
    assert!(dump.contains(&format!("gvthread-{}", on_channel.id().slot())), "{dump}");
    assert!(dump.contains("[Normal, worker "), "{dump}");

    // Dumping held nobody back: every GVThread still gets its wake.
    tx.send(1).unwrap();
    guard_holder.1.send(()).unwrap();
    gate_tx.send(3).unwrap();
    sleeper.cancel();
    fut_tx.send(5).unwrap();
    assert_eq!(on_channel.join().unwrap(), 1);
    guard_holder.0.join().unwrap();
    assert_eq!(on_mutex.join().unwrap(), 2);
    assert_eq!(on_join.join().unwrap(), 3);
    assert_eq!(sleeper.join().unwrap(), 4);
    assert_eq!(on_future.join().unwrap(), 5);
}

#[test]
fn a_gvthread_can_dump_its_own_runtime() {
    let _w = common::watchdog("a_gvthread_can_dump_its_own_runtime", Duration::from_secs(60));
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    let dump = rt.block_on(|| gvthread::Handle::current().dump());
    assert!(dump.contains("running (called dump"), "{dump}");
    // It waited for the dump parked, so its own stack is in it.
    assert!(dump.contains("a_gvthread_can_dump_its_own_runtime"), "{dump}");
}

/// Dumps taken over and over while GVThreads ping-pong on channels: every
/// message arrives (a wake landing while the dump holds a GVThread is
/// delivered when it lets go).
#[test]
fn dumping_loses_no_wake() {
    let _w = common::watchdog("dumping_loses_no_wake", Duration::from_secs(120));
    const ROUNDS: u32 = 2000;
    let rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let h = rt.handle();
    let (a_tx, a_rx) = gvthread::channel::<u32>(0);
    let (b_tx, b_rx) = gvthread::channel::<u32>(0);
    let ping = h.spawn(move |_| {
        let mut sum = 0u64;
        for i in 0..ROUNDS {
            a_tx.send(i).unwrap();
            sum += b_rx.recv().unwrap() as u64;
        }
        sum
    });
    let pong = h.spawn(move |_| {
        for v in a_rx {
            if b_tx.send(v * 2).is_err() {
                break;
            }
        }
    });
    let mut dumps = 0;
    while !ping.is_finished() && dumps < 10_000 {
        let _ = rt.handle().dump();
        dumps += 1;
    }
    let expected: u64 = (0..ROUNDS as u64).map(|i| i * 2).sum();
    assert_eq!(ping.join().unwrap(), expected);
    pong.join().unwrap();
}

#[test]
fn sigquit_prints_the_dump_on_stderr() {
    // A child process: the SIGQUIT handler is process-wide and stays.
    if !common::isolated("sigquit_prints_the_dump_on_stderr", Duration::from_secs(120)) {
        return;
    }
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join(format!("gvthread-sigquit-{}.txt", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    // SAFETY: plain fd duplication; fd 2 is restored below.
    let saved = unsafe { libc::dup(2) };
    // SAFETY: as above.
    unsafe { libc::dup2(file.as_raw_fd(), 2) };

    let rt = Runtime::new(SchedulerConfig::default().num_workers(1).dump_on_sigquit(true));
    let (tx, rx) = gvthread::channel::<u32>(0);
    let waiter = rt.handle().spawn(move |_| dump_test_waits_on_channel(rx));
    dump_until(&rt, |d| d.contains("dump_test_waits_on_channel"));
    // SAFETY: raising a signal whose handler the runtime installed.
    unsafe { libc::raise(libc::SIGQUIT) };
    let mut printed = String::new();
    for _ in 0..2400 {
        printed = std::fs::read_to_string(&path).unwrap();
        if printed.contains("dump_test_waits_on_channel") {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // SAFETY: restoring the saved stderr.
    unsafe { libc::dup2(saved, 2) };
    let _ = std::fs::remove_file(&path);
    assert!(printed.contains("gvthread dump:"), "{printed}");
    assert!(printed.contains("dump_test_waits_on_channel"), "{printed}");
    tx.send(7).unwrap();
    assert_eq!(waiter.join().unwrap(), 7);
}
