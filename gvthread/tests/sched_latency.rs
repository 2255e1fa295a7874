//! Latency and fairness beside CPU hogs: wake-up preemption, priorities as
//! latency, CPU-time fairness. No timing assertions: counts and orderings,
//! with margins far from what the pre-wake-up-preemption scheduler allows.
//! Each scenario runs in its own process.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gvthread::{Priority, Runtime, SchedulerConfig};

const LIMIT: Duration = Duration::from_secs(240);

/// Spins until `stop`, or `limit`; returns whether it saw `stop`.
fn spin_until(stop: &AtomicBool, limit: Duration) -> bool {
    let t = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if t.elapsed() >= limit {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

#[test]
fn a_sleeper_beside_a_hog_gets_more_turns_than_whole_slices_allow() {
    if !common::isolated("a_sleeper_beside_a_hog_gets_more_turns_than_whole_slices_allow", LIMIT) {
        return;
    }
    // 1 worker, 50 ms slices. Served only when the hog's slice ends, a 1 ms
    // sleeper would get one turn per 51 ms: about 30 in 1.5 s. The bound
    // asks for three times that (a loaded 2-core machine reaches ~140; an
    // idle one ~1,000).
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1).time_slice(Duration::from_millis(50)));
    let turns = rt.block_on(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let turns = Arc::new(AtomicU64::new(0));
        let (s, t) = (stop.clone(), turns.clone());
        let ticker = gvthread::spawn(move |_| {
            while !s.load(Ordering::Relaxed) {
                gvthread::sleep(Duration::from_millis(1));
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        let s = stop.clone();
        let hog = gvthread::spawn(move |_| spin_until(&s, Duration::from_millis(1500)));
        // This GVThread waits for the hog (parks), so only the two compete.
        gvthread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        ticker.join().unwrap();
        turns.load(Ordering::Relaxed)
    });
    let m = rt.metrics();
    assert!(turns >= 90, "the sleeper ran {turns} times in 1.5 s beside a hog with 50 ms slices: {m:?}");
}

/// One worker, 10 s slices and wake-up preemption off for equal
/// priorities: a GVThread of priority `waker` wakes from a 20 ms sleep beside
/// a hog of priority `hog`. Returns whether it ran before the hog gave up
/// (after 5 s, having seen nothing): only the priority rule can get it in.
#[test]
fn a_timer_wake_preempts_the_hog_without_waiting_for_a_monitor_tick() {
    if !common::isolated("a_timer_wake_preempts_the_hog_without_waiting_for_a_monitor_tick", LIMIT) {
        return;
    }
    // 1 worker, 50 ms slices, and the monitor ticks only every 50 ms. Were
    // wake-up preemption decided at the ticks, a 1 ms sleeper beside a hog
    // would get at most one turn per tick: about 30 in 1.5 s. The timer
    // thread preempts right after firing the sleeper's timer instead; the
    // bound asks for three times the tick-limited count.
    let cfg = SchedulerConfig::default()
        .num_workers(1)
        .time_slice(Duration::from_millis(50))
        .timer_interval(Duration::from_millis(50));
    let mut rt = Runtime::new(cfg);
    let turns = rt.block_on(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let turns = Arc::new(AtomicU64::new(0));
        let (s, t) = (stop.clone(), turns.clone());
        let ticker = gvthread::spawn(move |_| {
            while !s.load(Ordering::Relaxed) {
                gvthread::sleep(Duration::from_millis(1));
                t.fetch_add(1, Ordering::Relaxed);
            }
        });
        let s = stop.clone();
        let hog = gvthread::spawn(move |_| spin_until(&s, Duration::from_millis(1500)));
        gvthread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        ticker.join().unwrap();
        turns.load(Ordering::Relaxed)
    });
    let m = rt.metrics();
    assert!(turns >= 90, "the sleeper ran {turns} times in 1.5 s beside a hog, 50 ms monitor ticks: {m:?}");
}

fn woken_before_the_hog_gives_up(waker: Priority, hog: Priority) -> bool {
    let mut rt = Runtime::new(
        SchedulerConfig::default().num_workers(1).time_slice(Duration::from_secs(10)).wakeup_granularity(Duration::MAX),
    );
    rt.block_on(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let woken = gvthread::spawn_with_priority(waker, move |_| {
            gvthread::sleep(Duration::from_millis(20));
            s.store(true, Ordering::Relaxed);
        });
        // Let it park in its sleep first.
        gvthread::sleep(Duration::from_millis(5));
        let s = stop.clone();
        let hog = gvthread::spawn_with_priority(hog, move |_| spin_until(&s, Duration::from_secs(5)));
        let seen = hog.join().unwrap();
        woken.join().unwrap();
        seen
    })
}

#[test]
fn a_high_priority_wake_preempts_a_normal_hog_before_its_slice_ends() {
    if !common::isolated("a_high_priority_wake_preempts_a_normal_hog_before_its_slice_ends", LIMIT) {
        return;
    }
    assert!(
        woken_before_the_hog_gives_up(Priority::High, Priority::Normal),
        "the High GVThread ran only after the Normal hog gave up its worker"
    );
}

#[test]
fn a_low_priority_hog_yields_to_any_wake() {
    if !common::isolated("a_low_priority_hog_yields_to_any_wake", LIMIT) {
        return;
    }
    assert!(
        woken_before_the_hog_gives_up(Priority::Normal, Priority::Low),
        "the Normal GVThread ran only after the Low hog gave up its worker"
    );
}

/// Round trips of a channel ping-pong pair on one worker in `for_`, with a
/// CPU hog beside it or not.
fn pair_round_trips(hog: bool, for_: Duration) -> u64 {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    rt.block_on(move || {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let hog = hog.then(|| gvthread::spawn(move |_| spin_until(&s, Duration::from_secs(60))));
        let (tx1, rx1) = gvthread::channel::<u64>(0);
        let (tx2, rx2) = gvthread::channel::<u64>(0);
        let echo = gvthread::spawn(move |_| {
            for v in rx1.iter() {
                if tx2.send(v).is_err() {
                    break;
                }
            }
        });
        let s = stop.clone();
        let pinger = gvthread::spawn(move |_| {
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                tx1.send(n).unwrap();
                rx2.recv().unwrap();
                n += 1;
            }
            n
        });
        gvthread::sleep(for_);
        stop.store(true, Ordering::Relaxed);
        let n = pinger.join().unwrap();
        echo.join().unwrap();
        if let Some(h) = hog {
            h.join().unwrap();
        }
        n
    })
}

#[test]
fn a_message_passing_pair_keeps_a_fair_share_beside_a_hog() {
    if !common::isolated("a_message_passing_pair_keeps_a_fair_share_beside_a_hog", LIMIT) {
        return;
    }
    let alone = pair_round_trips(false, Duration::from_secs(1));
    let beside = pair_round_trips(true, Duration::from_secs(1));
    // Counted in decisions, the pair got 0.07% of its rounds beside a hog;
    // shared by time it gets about half. Generous for a loaded machine.
    assert!(beside * 5 >= alone, "the pair made {beside} round trips beside a hog, {alone} alone");
}

#[test]
fn a_preempted_spawner_finishes_beside_a_hundred_thousand_sleepers() {
    if !common::isolated("a_preempted_spawner_finishes_beside_a_hundred_thousand_sleepers", LIMIT) {
        return;
    }
    let _w = common::watchdog("100k sleepers", LIMIT);
    let runs = if cfg!(debug_assertions) { 3 } else { 20 };
    for _ in 0..runs {
        let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
        rt.block_on(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let s = stop.clone();
            // The spawner may be preempted while spawning; it must run again
            // however much woken work keeps the workers busy.
            let spawner = gvthread::spawn(move |_| {
                let hs: Vec<_> = (0..100_000)
                    .map(|_| {
                        let s = s.clone();
                        gvthread::spawn(move |_| {
                            while !s.load(Ordering::Relaxed) {
                                gvthread::sleep(Duration::from_millis(1));
                            }
                        })
                    })
                    .collect();
                gvthread::sleep(Duration::from_millis(500));
                s.store(true, Ordering::Relaxed);
                hs
            });
            for h in spawner.join().unwrap() {
                h.join().unwrap();
            }
            drop(stop);
        });
    }
}
