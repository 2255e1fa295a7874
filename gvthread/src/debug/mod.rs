//! Debugging support: reading suspended GVThreads' stacks.
//!
//! | file | holds |
//! |---|---|
//! | `unwind` | DWARF CFI unwinding of a suspended stack, bounded to that stack |

pub(crate) mod unwind;
