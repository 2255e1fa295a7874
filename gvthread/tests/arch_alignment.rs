//! The fresh-stack frame must give the ABI's 16-byte alignment (the original
//! code crashed in `movaps` on an 8-byte-aligned stack) and default FP state.

mod common;

#[repr(align(16))]
#[derive(Clone, Copy)]
struct Aligned([f32; 4]);

#[inline(never)]
fn sse_work(seed: f32) -> f32 {
    // Aligned locals and packed float math: compiled to movaps/mulps.
    let mut v = [Aligned([seed, seed + 1.0, seed + 2.0, seed + 3.0]); 8];
    for (i, a) in v.iter_mut().enumerate() {
        for x in a.0.iter_mut() {
            *x = *x * 1.5 + i as f32;
        }
    }
    let addr = &v as *const _ as usize;
    assert_eq!(addr % 16, 0, "local with align(16) is misaligned");
    v.iter().map(|a| a.0.iter().sum::<f32>()).sum()
}

#[test]
fn floats_and_aligned_locals_in_gvthreads() {
    let mut rt = common::rt(2);
    let results = rt.block_on(|| {
        let hs: Vec<_> = (0..100)
            .map(|i| {
                gvthread::spawn(move |_| {
                    let a = sse_work(i as f32);
                    gvthread::yield_now();
                    // Formatting floats uses SSE and the stack heavily.
                    let s = format!("{:.3} {:e} {}", a, a * 1e10, (a as f64).sqrt());
                    (a, s)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for (i, (a, s)) in results.into_iter().enumerate() {
        assert_eq!(a, sse_work(i as f32), "same result as on an OS thread");
        assert_eq!(s, format!("{:.3} {:e} {}", a, a * 1e10, (a as f64).sqrt()));
    }
}

#[test]
fn stack_pointer_is_aligned_at_entry() {
    #[inline(never)]
    fn probe() -> usize {
        let x = Aligned([0.0; 4]);
        std::hint::black_box(&x) as *const _ as usize
    }
    let mut rt = common::rt(1);
    let addrs = rt.block_on(|| (0..10).map(|_| gvthread::spawn(|_| probe()).join().unwrap()).collect::<Vec<_>>());
    assert!(addrs.iter().all(|a| a % 16 == 0), "{addrs:x?}");
}

#[test]
fn rounding_mode_is_per_gvthread() {
    // MXCSR is callee-saved: a GVThread's default rounding is not affected by
    // another GVThread's computations.
    let mut rt = common::rt(1);
    let r = rt.block_on(|| {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                gvthread::spawn(move |_| {
                    let mut x = 0.1f64 * i as f64;
                    for _ in 0..100 {
                        x = (x * 3.0 + 0.7) / 3.1;
                        gvthread::yield_now();
                    }
                    x
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    for (i, x) in r.into_iter().enumerate() {
        let mut y = 0.1f64 * i as f64;
        for _ in 0..100 {
            y = (y * 3.0 + 0.7) / 3.1;
        }
        assert_eq!(x.to_bits(), y.to_bits());
    }
}
