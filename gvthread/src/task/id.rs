//! GVThread identifiers.

use std::fmt;

/// Identifies one GVThread for its whole life: its slot and the slot's
/// generation, so ids are never reused while anybody could confuse them.
///
/// ```
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
/// let id = rt.block_on(|| gvthread::current_id().unwrap());
/// println!("ran as {id}");
/// assert!(gvthread::current_id().is_none()); // not inside a GVThread here
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GVThreadId {
    slot: u32,
    generation: u32,
}

impl GVThreadId {
    pub(crate) fn new(slot: u32, generation: u32) -> GVThreadId {
        GVThreadId { slot, generation }
    }

    /// The slot index (reused by later GVThreads).
    pub fn slot(self) -> u32 {
        self.slot
    }

    /// The generation of the slot this GVThread holds.
    pub fn generation(self) -> u32 {
        self.generation
    }

    /// A unique 64-bit value for this id.
    pub fn as_u64(self) -> u64 {
        (self.generation as u64) << 32 | self.slot as u64
    }
}

impl fmt::Debug for GVThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GVThreadId({}.{})", self.slot, self.generation)
    }
}

impl fmt::Display for GVThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gvthread-{}.{}", self.slot, self.generation)
    }
}
