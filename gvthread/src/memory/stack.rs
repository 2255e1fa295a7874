//! A lock-free LIFO of slot ids (Treiber stack), linked through a per-slot
//! `next` word kept in the chunk side tables.
//!
//! # Protocol
//!
//! `head` packs a 32-bit tag (bumped by every successful push and pop) with
//! `id + 1` of the top slot (0: empty). A pop reads `head`, reads the top
//! slot's `next`, and swings `head` to it with a compare-and-swap; a push
//! writes its slot's `next` and swings `head` to the slot. The tag makes
//! the classic ABA case fail: if the top slot was popped and pushed back
//! between our read of `head` and our compare-and-swap, the tag differs, so
//! a stale `next` is never installed. The `next` words live in side tables
//! that outlive every stack, so reading the `next` of a slot that someone
//! else popped meanwhile reads a valid (if stale) word, which the failed
//! compare-and-swap then discards. A slot is on at most one stack at a time
//! (callers guarantee it), so its `next` has a single writer while it is
//! pushed. No allocation, no lock: safe on any path a frozen GVThread may
//! block (design-notes §2b).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

pub(super) struct IdStack {
    head: AtomicU64,
    /// Approximate length (exact when quiescent).
    len: AtomicUsize,
}

const TAG_ONE: u64 = 1 << 32;

impl IdStack {
    pub(super) const fn new() -> IdStack {
        IdStack { head: AtomicU64::new(0), len: AtomicUsize::new(0) }
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Pushes the chain `first ..= last` (already linked through `next`;
    /// `last`'s link is overwritten). `n` is the chain's length.
    pub(super) fn push_chain(&self, first: u32, last: &AtomicU32, n: usize) {
        let mut h = self.head.load(Ordering::Relaxed);
        loop {
            last.store(h as u32, Ordering::Relaxed);
            let new = (h & !0xffff_ffff).wrapping_add(TAG_ONE) | u64::from(first + 1);
            // Release: the links (and whatever the pusher wrote about the
            // slots) are visible to the popper that acquires `head`.
            match self.head.compare_exchange_weak(h, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(cur) => h = cur,
            }
        }
        self.len.fetch_add(n, Ordering::Relaxed);
    }

    /// Pushes one slot whose link word is `next`.
    pub(super) fn push(&self, id: u32, next: &AtomicU32) {
        self.push_chain(id, next, 1);
    }

    /// The top slot as of now, for a prefetch: by the time the caller uses
    /// it, somebody may have popped it.
    #[inline]
    pub(super) fn peek(&self) -> Option<u32> {
        (self.head.load(Ordering::Relaxed) as u32).checked_sub(1)
    }

    /// Pops the top slot; `next_of` gives a slot's link word.
    pub(super) fn pop<'a>(&self, next_of: impl Fn(u32) -> &'a AtomicU32) -> Option<u32> {
        let mut h = self.head.load(Ordering::Acquire);
        loop {
            let top = h as u32;
            if top == 0 {
                return None;
            }
            let id = top - 1;
            let next = next_of(id).load(Ordering::Relaxed);
            let new = (h & !0xffff_ffff).wrapping_add(TAG_ONE) | u64::from(next);
            match self.head.compare_exchange_weak(h, new, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    self.len.fetch_sub(1, Ordering::Relaxed);
                    return Some(id);
                }
                Err(cur) => h = cur,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lifo_and_chains() {
        let next: Vec<AtomicU32> = (0..8).map(|_| AtomicU32::new(0)).collect();
        let s = IdStack::new();
        s.push(1, &next[1]);
        s.push(5, &next[5]);
        // chain 2 -> 3
        next[2].store(3 + 1, Ordering::Relaxed);
        s.push_chain(2, &next[3], 2);
        assert_eq!(s.len(), 4);
        let got: Vec<u32> = std::iter::from_fn(|| s.pop(|i| &next[i as usize])).collect();
        assert_eq!(got, [2, 3, 5, 1]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn concurrent_push_pop_keeps_every_id_once() {
        const N: usize = 64;
        let next: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
        let s = Arc::new(IdStack::new());
        for i in 0..N as u32 {
            s.push(i, &next[i as usize]);
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (s, next) = (s.clone(), next.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(id) = s.pop(|i| &next[i as usize]) {
                            s.push(id, &next[id as usize]);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut got: Vec<u32> = std::iter::from_fn(|| s.pop(|i| &next[i as usize])).collect();
        got.sort_unstable();
        assert_eq!(got, (0..N as u32).collect::<Vec<_>>());
    }
}
