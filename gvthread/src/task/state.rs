//! The per-slot state word.
//!
//! ```text
//!  63   56 55    48  47    46  45 44 43  42  41  40      39  32 31                0
//! +-------+--------+-------+----+-----+--+----+----+--------+------+------------------+
//! |unused |  home  |STARTED|    | prio|  |CTED|CING|NOTIFIED| kind |    generation    |
//! +-------+--------+-------+----+-----+--+----+----+--------+------+------------------+
//! ```
//!
//! `COMPACTING` (CING) and `COMPACTED` (CTED) belong to stack compaction
//! (`memory::compact`): the stack of a long-parked GVThread was copied out
//! and its pages given back. They are orthogonal to the kind, so a wake
//! (`PARKED -> ACTIVE`, which keeps every other bit) needs to know nothing
//! about them; whoever resumes the GVThread restores its stack first.
//!
//! `STARTED` and `home` record where the GVThread first ran: the index of the
//! worker role it is bound to for the rest of its life (see `sched` for why a
//! started GVThread never leaves its role's OS threads). They are set once, by
//! the role that runs it for the first time, before it runs; a fresh word
//! (spawn) has neither.
//!
//! | kind     | who owns the stack                                  | queued?            |
//! |----------|-----------------------------------------------------|--------------------|
//! | `FREE`   | nobody (slot on the free list)                      | no                 |
//! | `ACTIVE` | the run queue holding it, or the worker running it  | queued, or running |
//! | `PARKED` | nobody; the next waker re-queues it                 | no                 |
//! | `BLOCKED`| its OS thread, waiting on the word's futex (a park while unwinding) | no  |
//!
//! Queued and running are one kind on purpose: nothing needs to tell them
//! apart (a wake sets `NOTIFIED` on either), and not distinguishing them
//! saves two atomic read-modify-writes per yield. The run queues themselves
//! (release on push, acquire on pop) publish the saved context.
//!
//! `NOTIFIED` records a wake that arrived while the GVThread was not parked;
//! its next park consumes it and returns at once (no lost wakeup). Every wake
//! names a generation and is a no-op when it differs (no stale wakeup).
//! Transitions are compare-and-swap on the whole word; see `sched::park`.

/// Slot on the free list.
pub(crate) const FREE: u64 = 0;
/// Queued or running.
pub(crate) const ACTIVE: u64 = 1;
/// Parked: registers saved, waiting for a wake.
pub(crate) const PARKED: u64 = 2;
/// Waiting without switching: its OS thread sleeps on the futex in the upper
/// half of the word (a GVThread that blocks while unwinding must stay on its
/// OS thread, whose panic count it carries). A wake makes it `ACTIVE` and
/// wakes the futex.
pub(crate) const BLOCKED: u64 = 3;

const KIND_SHIFT: u32 = 32;
const KIND_MASK: u64 = 0xff << KIND_SHIFT;
/// A wake arrived while not parked.
pub(crate) const NOTIFIED: u64 = 1 << 40;
const PRIO_SHIFT: u32 = 44;
const PRIO_MASK: u64 = 0b11 << PRIO_SHIFT;
/// Stack compaction or restoration of this GVThread is in progress (a
/// lock bit held by the compactor or the restorer; see `memory::compact`).
pub(crate) const COMPACTING: u64 = 1 << 41;
/// The GVThread's stack is compacted: its bytes live in a compact buffer and
/// must be copied back before it runs (see `memory::compact`).
pub(crate) const COMPACTED: u64 = 1 << 42;
/// The GVThread has run: it is bound to the role in `home`.
pub(crate) const STARTED: u64 = 1 << 47;
const HOME_SHIFT: u32 = 48;
const HOME_MASK: u64 = 0xff << HOME_SHIFT;

/// The role a started GVThread is bound to (`None` before it first runs).
#[inline]
pub(crate) fn home(word: u64) -> Option<usize> {
    (word & STARTED != 0).then_some(((word & HOME_MASK) >> HOME_SHIFT) as usize)
}

/// The bits that bind a GVThread to role `index` (at most 255).
#[inline]
#[must_use]
pub(crate) fn home_bits(index: usize) -> u64 {
    debug_assert!(index <= 0xff);
    STARTED | ((index as u64) << HOME_SHIFT)
}

/// Generation part of a state word.
#[inline]
pub(crate) fn generation(word: u64) -> u32 {
    word as u32
}

/// Kind part of a state word.
#[inline]
pub(crate) fn kind(word: u64) -> u64 {
    (word & KIND_MASK) >> KIND_SHIFT
}

/// Priority part of a state word.
#[inline]
pub(crate) fn priority(word: u64) -> u8 {
    ((word & PRIO_MASK) >> PRIO_SHIFT) as u8
}

/// `word` with its kind replaced.
#[inline]
#[must_use]
pub(crate) fn with_kind(word: u64, kind: u64) -> u64 {
    (word & !KIND_MASK) | (kind << KIND_SHIFT)
}

/// A fresh word for a newly spawned GVThread.
#[inline]
#[must_use]
pub(crate) fn spawned(generation: u32, priority: u8) -> u64 {
    generation as u64 | (ACTIVE << KIND_SHIFT) | ((priority as u64) << PRIO_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let w = spawned(7, 3);
        assert_eq!(generation(w), 7);
        assert_eq!(kind(w), ACTIVE);
        assert_eq!(priority(w), 3);
        let p = with_kind(w | NOTIFIED, PARKED);
        assert_eq!(kind(p), PARKED);
        assert_eq!(generation(p), 7);
        assert_eq!(priority(p), 3);
        assert!(p & NOTIFIED != 0);
        assert_eq!(home(w), None);
        let h = p | home_bits(200);
        assert_eq!(home(h), Some(200));
        assert_eq!(generation(h), 7);
        assert_eq!(kind(with_kind(h, BLOCKED)), BLOCKED);
        assert_eq!(home(with_kind(h, BLOCKED)), Some(200));
    }
}
