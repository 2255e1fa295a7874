//! Stack size classes.
//!
//! A GVThread's slot (guard page + stack, header at the top) has one of
//! [`NUM_CLASSES`] sizes, powers of two from [`MIN_SLOT`] (16 KiB) to
//! [`MAX_SLOT`] (512 MiB). A requested stack size is rounded up to the
//! smallest class whose slot holds it, the way allocators round to size
//! classes: only address space is rounded, physical pages are still touched
//! on demand. Slots of one class share free lists; classes never mix inside a
//! chunk.
//!
//! Classes below 2 MiB put several slots in one 2 MiB range, so the
//! top pages of idle GVThreads (and the guard pages between them) share
//! page-table pages: a 256 KiB class puts eight idle stacks behind one
//! page-table page, where the 16 MiB default needs one per stack.

/// Smallest slot: a guard page and three pages of stack (the header, the
/// spawn payload and the first frames need two).
pub(crate) const MIN_SLOT: usize = 16 * 1024;
/// Number of classes.
pub(crate) const NUM_CLASSES: usize = 16;
/// Largest slot.
pub(crate) const MAX_SLOT: usize = MIN_SLOT << (NUM_CLASSES - 1);
/// The default stack size (the slot size of the default class).
pub(crate) const DEFAULT_STACK: usize = 16 * 1024 * 1024;

/// One stack size class: slot size `MIN_SLOT << index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StackClass(u8);

impl StackClass {
    /// The class of the default stack size.
    pub(crate) const DEFAULT: StackClass =
        StackClass(DEFAULT_STACK.trailing_zeros() as u8 - MIN_SLOT.trailing_zeros() as u8);

    /// The smallest class whose slot is at least `bytes`, or `None` above
    /// [`MAX_SLOT`].
    pub(crate) fn for_size(bytes: usize) -> Option<StackClass> {
        if bytes > MAX_SLOT {
            return None;
        }
        let slot = bytes.max(MIN_SLOT).next_power_of_two();
        Some(StackClass((slot.trailing_zeros() - MIN_SLOT.trailing_zeros()) as u8))
    }

    /// Class number `i` (`i < NUM_CLASSES`).
    pub(crate) fn from_index(i: usize) -> StackClass {
        debug_assert!(i < NUM_CLASSES);
        StackClass(i as u8)
    }

    /// Index in `0..NUM_CLASSES`.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }

    /// Bytes of one slot of this class (guard page included).
    pub(crate) fn slot_size(self) -> usize {
        MIN_SLOT << self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(StackClass::DEFAULT.slot_size(), 16 << 20);
        assert_eq!(StackClass::for_size(0).unwrap().slot_size(), MIN_SLOT);
        assert_eq!(StackClass::for_size(1).unwrap().slot_size(), MIN_SLOT);
        assert_eq!(StackClass::for_size(MIN_SLOT + 1).unwrap().slot_size(), 2 * MIN_SLOT);
        assert_eq!(StackClass::for_size(256 << 10).unwrap().slot_size(), 256 << 10);
        assert_eq!(StackClass::for_size(300 << 10).unwrap().slot_size(), 512 << 10);
        assert_eq!(StackClass::for_size(16 << 20), Some(StackClass::DEFAULT));
        assert_eq!(StackClass::for_size(MAX_SLOT).unwrap().index(), NUM_CLASSES - 1);
        assert_eq!(StackClass::for_size(MAX_SLOT + 1), None);
    }
}
