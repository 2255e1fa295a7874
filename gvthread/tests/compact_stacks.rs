//! Stack compaction of long-parked GVThreads: everything a GVThread keeps on
//! its stack (and in its header) survives being compacted and restored.
//!
//! Each test makes GVThreads park, waits (bounded) until the runtime's
//! metrics say they were compacted, then wakes them and checks their state.
//! Nothing asserts timing.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use gvthread::{Handle, Runtime, SchedulerConfig};

/// A runtime compacting GVThreads parked for more than 1 ms.
fn rt(workers: usize) -> Runtime {
    // SAFETY: no test here lets another thread touch a GVThread's stack
    // while it is parked (no scoped threads, no raw pointers handed out).
    Runtime::new(unsafe {
        SchedulerConfig::default().num_workers(workers).compact_idle_after(Some(Duration::from_millis(1)))
    })
}

/// Waits until `cond(metrics)` holds (bounded: gives up after about 20 s
/// and fails). Inside a GVThread only the GVThread sleeps meanwhile (so the
/// others run); it is running when it checks, so it is never among the
/// compacted GVThreads it counts.
fn wait_for(h: &Handle, what: &str, cond: impl Fn(&gvthread::RuntimeMetrics) -> bool) {
    for _ in 0..20_000 {
        if cond(&h.metrics()) {
            return;
        }
        gvthread::sleep(Duration::from_millis(1));
    }
    panic!("gave up waiting for {what}: {:?}", h.metrics());
}

/// Parks (sleeping, which leaves the stack compactable) until `flag`
/// reaches `v`. Each park lasts well beyond the 1 ms threshold as the
/// compactor measures it (the coarse clock, which advances a jiffy, up to
/// 4 ms, at a time): with 3 ms sleeps a compaction needed luck, and with
/// the other tests running beside it the test gave up about once in three.
fn sleep_until(flag: &AtomicU64, v: u64) {
    while flag.load(Ordering::Acquire) < v {
        gvthread::sleep(Duration::from_millis(20));
    }
}

/// Fills a stack buffer with a pattern derived from `seed`.
fn pattern(seed: u64, buf: &mut [u64]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x;
    }
}

/// With the default class (guard marker and page tables given back) and a
/// 256 KiB class (both kept): see `memory/compact.rs`.
#[test]
fn locals_and_pointers_into_the_stack_survive() {
    let _w = common::watchdog("locals_and_pointers_into_the_stack_survive", Duration::from_secs(120));
    locals_survive(None);
    locals_survive(Some(256 * 1024));
}

fn locals_survive(stack: Option<usize>) {
    let mut rt = rt(2);
    let h = rt.handle();
    let flag = Arc::new(AtomicU64::new(0));
    let f = flag.clone();
    rt.block_on(move || {
        let b = gvthread::Builder::new();
        let b = match stack {
            Some(bytes) => b.stack_size(bytes),
            None => b,
        };
        let g = b
            .spawn(move |_| {
                let mut local = [0u64; 96];
                pattern(42, &mut local);
                let expected = local;
                // A reference into the stack, and a struct pointing to itself.
                let r: &[u64; 96] = &local;
                struct SelfRef {
                    data: [u32; 8],
                    ptr: *const u32,
                }
                let mut s = SelfRef { data: [1, 2, 3, 4, 5, 6, 7, 8], ptr: std::ptr::null() };
                s.ptr = &s.data[3];
                let s = std::hint::black_box(&mut s);
                sleep_until(&f, 1);
                // SAFETY: `s.ptr` points into `s`, which has not moved.
                let through_ptr = unsafe { *s.ptr };
                *r == expected && through_ptr == 4
            })
            .unwrap();
        wait_for(&Handle::current(), "a compaction", |m| m.compacted_gvthreads >= 1);
        flag.store(1, Ordering::Release);
        assert!(g.join().unwrap());
    });
    let m = h.metrics();
    assert!(m.restores >= 1, "{m:?}");
    assert_eq!(m.compacted_gvthreads, 0);
}

/// A one-shot future completed by another OS thread.
struct Shot(Arc<Mutex<(Option<u64>, Option<Waker>)>>);

impl Future for Shot {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut g = self.0.lock().unwrap();
        match g.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                g.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A GVThread parked in `block_on` is never compacted: the future is pinned
/// on its stack and may have handed pinned parts of itself (intrusive wait
/// nodes) to other threads, which may write there while it is parked.
#[test]
fn pinned_future_in_block_on_is_left_alone_and_survives() {
    let _w = common::watchdog("pinned_future_in_block_on_is_left_alone_and_survives", Duration::from_secs(60));
    let mut rt = rt(1);
    let h = rt.handle();
    let shared = Arc::new(Mutex::new((None, None::<Waker>)));
    let completer = {
        let (shared, h) = (shared.clone(), h.clone());
        std::thread::spawn(move || {
            // Give the compactor many passes over the parked GVThread.
            for _ in 0..50 {
                std::thread::sleep(Duration::from_millis(2));
                assert_eq!(h.metrics().compacted_gvthreads, 0);
            }
            let mut g = shared.lock().unwrap();
            g.0 = Some(11);
            if let Some(w) = g.1.take() {
                w.wake();
            }
        })
    };
    // The async block is pinned on the GVThread's stack by block_on, and
    // keeps a reference to its own local across the await.
    let out = rt.block_on(async move {
        let mut local = [0u64; 32];
        pattern(3, &mut local);
        let expected = local;
        let r = &local;
        let v = Shot(shared).await;
        (*r == expected, v)
    });
    completer.join().unwrap();
    assert_eq!(out, (true, 11));
}

/// Likewise a GVThread blocked in a channel receive: a sender hands the value
/// over into a slot on its stack.
/// What a receiver gets: big enough to matter, with a heap part.
#[derive(Debug, PartialEq)]
struct Msg {
    words: [u64; 16],
    text: String,
}

fn msg(i: u64) -> Msg {
    let mut words = [0u64; 16];
    pattern(i + 1000, &mut words);
    Msg { words, text: format!("message {i}") }
}

#[test]
fn blocked_receivers_are_compacted_and_get_their_values() {
    let _w = common::watchdog("blocked_receivers_are_compacted_and_get_their_values", Duration::from_secs(60));
    const N: u64 = 40;
    let mut rt = rt(1);
    let h = rt.handle();
    let restores_before = h.metrics().restores;
    rt.block_on(move || {
        // Bounded and rendezvous channels, one receiver each, blocked in
        // `recv` with a patterned local on its stack.
        let (txs, hs): (Vec<_>, Vec<_>) = (0..N)
            .map(|i| {
                let (tx, rx) = gvthread::channel::<Msg>(if i % 2 == 0 { 1 } else { 0 });
                let g = gvthread::spawn(move |_| {
                    let mut local = [0u64; 64];
                    pattern(i, &mut local);
                    let got = rx.recv().unwrap();
                    let mut want = [0u64; 64];
                    pattern(i, &mut want);
                    assert_eq!(local, want, "receiver {i}'s stack");
                    assert_eq!(got, msg(i), "receiver {i}'s value");
                });
                (tx, g)
            })
            .unzip();
        wait_for(&Handle::current(), "every receiver compacted", |m| m.compacted_gvthreads as u64 >= N);
        // Half the values from this GVThread, half from an OS thread (a
        // sender outside the runtime).
        let (mine, theirs): (Vec<_>, Vec<_>) = txs.into_iter().enumerate().partition(|(i, _)| i % 4 < 2);
        let os = std::thread::spawn(move || {
            for (i, tx) in theirs {
                tx.send(msg(i as u64)).unwrap();
            }
        });
        for (i, tx) in mine {
            tx.send(msg(i as u64)).unwrap();
        }
        os.join().unwrap();
        for g in hs {
            g.join().unwrap();
        }
    });
    let m = h.metrics();
    assert!(m.restores >= restores_before + N, "{m:?}");
    assert_eq!(m.compacted_gvthreads, 0, "{m:?}");
}

/// A receiver of values aligned beyond 16 bytes is not compacted (a copy of
/// its hand-off slot in a compact buffer would be misaligned).
#[repr(align(64))]
#[derive(Debug, PartialEq)]
struct Aligned([u8; 64]);

#[test]
fn receivers_of_over_aligned_values_are_left_alone() {
    let _w = common::watchdog("receivers_of_over_aligned_values_are_left_alone", Duration::from_secs(60));
    let mut rt = rt(1);
    let (tx, rx) = gvthread::channel::<Aligned>(1);
    let got = rt.block_on(move || {
        let g = gvthread::spawn(move |_| rx.recv().unwrap());
        // A sleeping GVThread beside it is compacted; the receiver is not.
        let flag = Arc::new(AtomicU64::new(0));
        let f = flag.clone();
        let s = gvthread::spawn(move |_| sleep_until(&f, 1));
        wait_for(&Handle::current(), "a compaction", |m| m.compacted_gvthreads >= 1);
        for _ in 0..20 {
            gvthread::sleep(Duration::from_millis(2));
            assert!(Handle::current().metrics().compacted_gvthreads <= 1);
        }
        flag.store(1, Ordering::Release);
        s.join().unwrap();
        tx.send(Aligned([5; 64])).unwrap();
        g.join().unwrap()
    });
    assert_eq!(got, Aligned([5; 64]));
}

#[test]
fn sends_racing_with_compaction_lose_nothing() {
    let _w = common::watchdog("sends_racing_with_compaction_lose_nothing", Duration::from_secs(120));
    // Receivers wait about the threshold between values, so deliveries keep
    // landing while the compactor works on them, or just after; each checks
    // every value and its stack.
    const N: u64 = 64;
    const ROUNDS: u64 = 30;
    // SAFETY: only the GVThreads themselves touch their stacks.
    let mut rt = Runtime::new(unsafe {
        SchedulerConfig::default().num_workers(2).compact_idle_after(Some(Duration::from_micros(500)))
    });
    let h = rt.handle();
    let total = rt.block_on(|| {
        let (txs, hs): (Vec<_>, Vec<_>) = (0..N)
            .map(|i| {
                let (tx, rx) = gvthread::channel::<Msg>(if i % 3 == 0 { 0 } else { 1 });
                let g = gvthread::spawn(move |_| {
                    let mut local = [0u64; 48];
                    pattern(i, &mut local);
                    let mut n = 0;
                    for round in 0..ROUNDS {
                        let got = rx.recv().unwrap();
                        assert_eq!(got, msg(i * ROUNDS + round), "receiver {i} round {round}");
                        let mut want = [0u64; 48];
                        pattern(i, &mut want);
                        assert_eq!(local, want, "receiver {i}'s stack, round {round}");
                        n += 1;
                    }
                    n
                });
                (tx, g)
            })
            .unzip();
        // Two senders, a GVThread and an OS thread, each feeding half the
        // receivers with pauses around the threshold.
        let (a, b): (Vec<_>, Vec<_>) = txs.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let feed = |txs: Vec<(usize, gvthread::Sender<Msg>)>, sleep: fn(Duration)| {
            for round in 0..ROUNDS {
                for (i, tx) in &txs {
                    tx.send(msg(*i as u64 * ROUNDS + round)).unwrap();
                }
                sleep(Duration::from_micros(300 + (round * 137) % 600));
            }
        };
        let os = std::thread::spawn(move || feed(b, std::thread::sleep));
        let gv = gvthread::spawn(move |_| feed(a, gvthread::sleep));
        gv.join().unwrap();
        os.join().unwrap();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, N * ROUNDS);
    let m = h.metrics();
    assert_eq!(m.compacted_gvthreads, 0, "{m:?}");
    assert_eq!(m.compacted_bytes, 0, "{m:?}");
}

#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn fp_work(x: f64, v: std::arch::x86_64::__m128d) -> (f64, [f64; 2]) {
    let mut out = [0.0f64; 2];
    // SAFETY: SSE2 is part of x86_64.
    unsafe { std::arch::x86_64::_mm_storeu_pd(out.as_mut_ptr(), v) };
    (x, out)
}

/// x86_64 only: MXCSR and SSE registers (aarch64's FPCR/FPSR across switches
/// are covered by `arch_aarch64.rs`).
#[cfg(target_arch = "x86_64")]
#[test]
fn fp_and_simd_state_survives() {
    use std::arch::x86_64::*;
    let _w = common::watchdog("fp_and_simd_state_survives", Duration::from_secs(60));
    let mut rt = rt(1);
    let flag = Arc::new(AtomicU64::new(0));
    let f = flag.clone();
    let ok = rt.block_on(move || {
        let g = gvthread::spawn(move |_| {
            // Round toward zero in this GVThread only (MXCSR is saved at switches).
            // SAFETY: reading and writing MXCSR has no memory effects.
            #[allow(deprecated)]
            let saved = unsafe { _mm_getcsr() };
            // SAFETY: as above.
            #[allow(deprecated)]
            unsafe {
                _mm_setcsr((saved & !0x6000) | 0x6000)
            };
            let x = std::hint::black_box(1.0f64 / 3.0);
            // SAFETY: SSE2 is part of x86_64.
            let v = unsafe { _mm_set_pd(std::hint::black_box(2.5), std::hint::black_box(-7.25)) };
            sleep_until(&f, 1);
            let (x2, lanes) = fp_work(x, v);
            // Rounding toward zero: 2/3 rounds down.
            let third = std::hint::black_box(2.0f64) / std::hint::black_box(3.0f64);
            // SAFETY: as above.
            #[allow(deprecated)]
            let csr = unsafe { _mm_getcsr() };
            x2 == 1.0 / 3.0
                && lanes == [-7.25, 2.5]
                && csr & 0x6000 == 0x6000
                && third.to_bits() == 0x3FE5_5555_5555_5555
        });
        wait_for(&Handle::current(), "a compaction", |m| m.compacted_gvthreads >= 1);
        flag.store(1, Ordering::Release);
        g.join().unwrap()
    });
    assert!(ok);
}

gvthread::gvthread_local! {
    static COUNT: Cell<u64> = Cell::new(0);
    static NAME: std::cell::RefCell<String> = std::cell::RefCell::new(String::new());
}

#[test]
fn gvthread_locals_survive() {
    let _w = common::watchdog("gvthread_locals_survive", Duration::from_secs(60));
    let mut rt = rt(2);
    let n = 20;
    let results = rt.block_on(move || {
        // Each GVThread stays parked in `recv` (no periodic wake-ups) until
        // all of them are compacted at once: GVThreads polling a flag every
        // few ms may never all be compacted together on a slow machine
        // (seen under qemu).
        let (txs, hs): (Vec<_>, Vec<_>) = (0..n)
            .map(|i| {
                let (tx, rx) = gvthread::channel::<()>(0);
                let g = gvthread::spawn(move |_| {
                    COUNT.with(|c| c.set(i * 10));
                    NAME.with(|s| *s.borrow_mut() = format!("gv{i}"));
                    rx.recv().unwrap();
                    (COUNT.with(|c| c.get()), NAME.with(|s| s.borrow().clone()))
                });
                (tx, g)
            })
            .unzip();
        wait_for(&Handle::current(), "compactions", |m| m.compacted_gvthreads >= n as usize);
        for tx in txs {
            tx.send(()).unwrap();
        }
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for (i, (c, s)) in results.into_iter().enumerate() {
        assert_eq!(c, i as u64 * 10);
        assert_eq!(s, format!("gv{i}"));
    }
}

#[test]
fn compacted_and_woken_a_thousand_times() {
    let _w = common::watchdog("compacted_and_woken_a_thousand_times", Duration::from_secs(240));
    let mut rt = rt(2);
    let h = rt.handle();
    let rounds = 1000u64;
    // Even rounds wake the GVThread with a message (it parks in `recv`),
    // odd rounds with its timer (it sleeps 10 ms at a time until a flag is
    // set): both wake paths restore a compacted stack. The GVThread reports
    // each round on `back`, so nothing else wakes it between rounds.
    let (to, from_main) = gvthread::channel::<u64>(0);
    let (back, from_child) = gvthread::channel::<u64>(0);
    let flag = Arc::new(AtomicU64::new(0));
    let f = flag.clone();
    let start = rt.metrics().compactions;
    rt.block_on(move || {
        let g = gvthread::spawn(move |_| {
            let mut local = [0u64; 64];
            pattern(9, &mut local);
            let mut sum = 0u64;
            for round in 0..rounds {
                let v = if round % 2 == 0 {
                    from_main.recv().unwrap()
                } else {
                    while f.load(Ordering::Acquire) <= round {
                        gvthread::sleep(Duration::from_millis(10));
                    }
                    round
                };
                assert_eq!(v, round);
                let mut check = [0u64; 64];
                pattern(9 + round, &mut check);
                let mut want = [0u64; 64];
                pattern(9 + round, &mut want);
                assert_eq!(check, want);
                let mut orig = [0u64; 64];
                pattern(9, &mut orig);
                assert_eq!(local, orig, "round {round}");
                sum = sum.wrapping_add(v);
                back.send(round).unwrap();
            }
            sum
        });
        let hd = Handle::current();
        let mut expected = 0u64;
        for round in 0..rounds {
            wait_for(&hd, "the next compaction", |m| m.compacted_gvthreads >= 1);
            if round % 2 == 0 {
                to.send(round).unwrap();
            } else {
                flag.store(round + 1, Ordering::Release);
            }
            expected = expected.wrapping_add(round);
            assert_eq!(from_child.recv().unwrap(), round);
        }
        assert_eq!(g.join().unwrap(), expected);
    });
    let m = h.metrics();
    assert!(m.compactions >= start + rounds, "{m:?}");
    assert!(m.restores >= rounds, "{m:?}");
    assert!(m.restore_latency_quantile(0.5).is_some());
}

#[test]
fn wakes_racing_with_compaction_lose_nothing() {
    let _w = common::watchdog("wakes_racing_with_compaction_lose_nothing", Duration::from_secs(120));
    // GVThreads sleep for about the threshold, so their wakes keep landing
    // while the compactor works on them (COMPACTING set); each checks its
    // stack after every wake.
    // SAFETY: only the GVThreads themselves touch their stacks.
    let mut rt = Runtime::new(unsafe {
        SchedulerConfig::default().num_workers(2).compact_idle_after(Some(Duration::from_micros(500)))
    });
    let h = rt.handle();
    let total = rt.block_on(|| {
        let hs: Vec<_> = (0..200u64)
            .map(|i| {
                gvthread::spawn(move |_| {
                    let mut local = [0u64; 48];
                    pattern(i, &mut local);
                    let mut n = 0u64;
                    for round in 0..40u64 {
                        gvthread::sleep(Duration::from_micros(200 + (i * 37 + round * 11) % 900));
                        let mut want = [0u64; 48];
                        pattern(i, &mut want);
                        assert_eq!(local, want, "GVThread {i} round {round}");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, 200 * 40);
    let m = h.metrics();
    assert_eq!(m.compacted_gvthreads, 0);
    assert_eq!(m.compacted_bytes, 0);
}

struct CountDrop(Arc<AtomicUsize>);

impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn shutdown_with_compacted_gvthreads_runs_their_destructors() {
    let _w = common::watchdog("shutdown_with_compacted_gvthreads_runs_their_destructors", Duration::from_secs(60));
    let dropped = Arc::new(AtomicUsize::new(0));
    let n = 50;
    {
        let mut rt = rt(2);
        let d = dropped.clone();
        rt.block_on(move || {
            for _ in 0..n {
                let guard = CountDrop(d.clone());
                gvthread::spawn(move |_| {
                    let _g = guard;
                    // Parks until shutdown unwinds it.
                    gvthread::sleep(Duration::from_secs(3600));
                });
            }
            wait_for(&Handle::current(), "compactions", |m| m.compacted_gvthreads >= n);
            assert!(Handle::current().metrics().compacted_gvthreads >= n);
            assert!(Handle::current().metrics().compacted_bytes > 0);
        });
        drop(rt);
    }
    assert_eq!(dropped.load(Ordering::SeqCst), n);
}

#[test]
fn dump_names_compacted_gvthreads_without_touching_their_stacks() {
    let _w = common::watchdog("dump_names_compacted_gvthreads_without_touching_their_stacks", Duration::from_secs(60));
    let mut rt = rt(1);
    let dump = rt.block_on(move || {
        // Parked on a mutex the caller holds: it stays parked (and
        // compacted) until the dump is taken.
        let lock = Arc::new(gvthread::SchedMutex::new(()));
        let held = lock.lock();
        let l = lock.clone();
        let g = gvthread::spawn(move |_| drop(l.lock()));
        wait_for(&Handle::current(), "a compaction", |m| m.compacted_gvthreads >= 1);
        let d = Handle::current().dump();
        drop(held);
        g.join().unwrap();
        d
    });
    assert!(dump.contains("stack compacted"), "{dump}");
}

#[test]
fn compaction_off_compacts_nothing() {
    let _w = common::watchdog("compaction_off_compacts_nothing", Duration::from_secs(60));
    // SAFETY: `None` turns compaction off.
    let mut rt = Runtime::new(unsafe { SchedulerConfig::default().num_workers(1).compact_idle_after(None) });
    rt.block_on(|| {
        let h = gvthread::spawn(|_| gvthread::sleep(Duration::from_millis(50)));
        h.join().unwrap();
    });
    assert_eq!(rt.metrics().compactions, 0);
}
