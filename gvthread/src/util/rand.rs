//! A tiny xorshift generator for victim selection (no need for quality).

use std::cell::Cell;

/// Xorshift64* state.
#[derive(Debug)]
pub(crate) struct FastRand(Cell<u64>);

impl FastRand {
    pub(crate) fn new(seed: u64) -> FastRand {
        FastRand(Cell::new(seed | 1))
    }

    /// A value in `0..n` (`n > 0`).
    pub(crate) fn below(&self, n: u32) -> u32 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % n.max(1)
    }
}
