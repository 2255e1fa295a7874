//! A global allocator that takes a spin lock, wrapped in
//! `gvthread::NonPreemptibleAlloc`: forced preemption never freezes a
//! GVThread while it holds the lock.
//!
//! The program: on one worker, an allocation-heavy hog beside a GVThread
//! that wakes every millisecond and allocates inside `no_preempt` (as the
//! runtime's own sections do). Wake-up preemption freezes the hog for it;
//! had the hog been frozen holding the lock, the woken GVThread would spin
//! on the lock with the only role, which the frozen hog needs to run again:
//! a hang. Without the wrapper (`static ALLOC: SpinLocked =
//! SpinLocked(AtomicBool::new(false));`) it hangs in 3 of 3 runs (checked by
//! hand; the watchdog ends it).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gvthread::{NonPreemptibleAlloc, Runtime, SchedulerConfig};

/// The C library's allocator behind one spin lock, held a little longer
/// than the call needs so that preemption signals often land inside it.
struct SpinLocked(AtomicBool);

// SAFETY: forwards to `System` with the caller's arguments, under a lock
// that only serialises the calls.
unsafe impl GlobalAlloc for SpinLocked {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.lock();
        // SAFETY: the caller's contract.
        let p = unsafe { System.alloc(layout) };
        self.unlock();
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.lock();
        // SAFETY: the caller's contract.
        unsafe { System.dealloc(ptr, layout) };
        self.unlock();
    }
}

impl SpinLocked {
    fn lock(&self) {
        while self.0.swap(true, Ordering::Acquire) {
            std::hint::spin_loop();
        }
        for i in 0..200u32 {
            black_box(i);
        }
    }

    fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

#[global_allocator]
static ALLOC: NonPreemptibleAlloc<SpinLocked> = NonPreemptibleAlloc::new(SpinLocked(AtomicBool::new(false)));

#[test]
fn a_hog_is_never_frozen_holding_the_allocator_lock() {
    let _w = common::watchdog("a_hog_is_never_frozen_holding_the_allocator_lock", Duration::from_secs(120));
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    let (made, ticks) = rt.block_on(|| {
        let hog = gvthread::spawn(|_| {
            let start = Instant::now();
            let mut keep = Vec::new();
            let mut i = 0u64;
            while start.elapsed() < Duration::from_millis(800) {
                i += 1;
                keep.push(vec![i; ((i * 7919) % 300 + 1) as usize]);
                if keep.len() > 500 {
                    keep.drain(..250);
                }
            }
            i
        });
        let sleeper = gvthread::spawn(|_| {
            let mut ticks = 0u32;
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(800) {
                gvthread::sleep(Duration::from_millis(1));
                gvthread::no_preempt(|| black_box(vec![ticks; 16]));
                ticks += 1;
            }
            ticks
        });
        (hog.join().unwrap(), sleeper.join().unwrap())
    });
    let m = rt.metrics();
    assert!(made > 0 && ticks > 0);
    assert!(m.forced_preemptions > 0, "the hog was never frozen: the test proved nothing ({m:?})");
}
