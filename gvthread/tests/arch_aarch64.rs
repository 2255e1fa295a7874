//! aarch64 only: the floating-point mode (FPCR) and the cumulative exception
//! flags (FPSR) belong to each GVThread, across switches, like any other
//! callee-saved state. (On other targets this file holds no tests.)
#![cfg(target_arch = "aarch64")]

mod common;

use std::arch::asm;
use std::time::Duration;

/// FPCR.RMode = round toward zero.
const ROUND_TOWARD_ZERO: u64 = 0b11 << 22;
/// FPSR.DZC: a division by zero happened.
const DIVIDE_BY_ZERO: u64 = 1 << 1;

fn fpcr() -> u64 {
    let v: u64;
    // SAFETY: reading FPCR has no side effects.
    unsafe { asm!("mrs {}, fpcr", out(reg) v, options(nomem, nostack)) };
    v
}

fn set_fpcr(v: u64) {
    // SAFETY: only the rounding mode changes; no Rust floating-point code
    // runs in this GVThread before it is put back.
    unsafe { asm!("msr fpcr, {}", in(reg) v, options(nomem, nostack)) };
}

fn fpsr() -> u64 {
    let v: u64;
    // SAFETY: reading FPSR has no side effects.
    unsafe { asm!("mrs {}, fpsr", out(reg) v, options(nomem, nostack)) };
    v
}

fn set_fpsr(v: u64) {
    // SAFETY: FPSR only holds status flags.
    unsafe { asm!("msr fpsr, {}", in(reg) v, options(nomem, nostack)) };
}

#[test]
fn rounding_mode_stays_with_its_gvthread() {
    let _w = common::watchdog("rounding_mode_stays_with_its_gvthread", Duration::from_secs(120));
    let mut rt = common::rt(1);
    rt.block_on(|| {
        let changed = gvthread::spawn(|_| {
            set_fpcr(ROUND_TOWARD_ZERO);
            let mut seen = Vec::new();
            for _ in 0..50 {
                gvthread::yield_now();
                seen.push(fpcr());
            }
            set_fpcr(0);
            seen
        });
        let default = gvthread::spawn(|_| {
            let mut seen = Vec::new();
            for _ in 0..50 {
                seen.push(fpcr());
                gvthread::yield_now();
            }
            seen
        });
        let changed = changed.join().unwrap();
        let default = default.join().unwrap();
        assert!(changed.iter().all(|&v| v & (0b11 << 22) == ROUND_TOWARD_ZERO), "{changed:x?}");
        assert!(default.iter().all(|&v| v & (0b11 << 22) == 0), "{default:x?}");
    });
}

#[test]
fn exception_flags_stay_with_their_gvthread() {
    let _w = common::watchdog("exception_flags_stay_with_their_gvthread", Duration::from_secs(120));
    let mut rt = common::rt(1);
    rt.block_on(|| {
        let raiser = gvthread::spawn(|_| {
            set_fpsr(0);
            let q = std::hint::black_box(1.0f64) / std::hint::black_box(0.0f64);
            assert!(q.is_infinite());
            let mut kept = true;
            for _ in 0..50 {
                gvthread::yield_now();
                kept &= fpsr() & DIVIDE_BY_ZERO != 0;
            }
            kept
        });
        let clearer = gvthread::spawn(|_| {
            let mut clean = true;
            for _ in 0..50 {
                set_fpsr(0);
                gvthread::yield_now();
                clean &= fpsr() & DIVIDE_BY_ZERO == 0;
            }
            clean
        });
        assert!(raiser.join().unwrap(), "another GVThread's feclearexcept cleared this one's flag");
        assert!(clearer.join().unwrap(), "another GVThread's flag leaked into this one");
    });
}
