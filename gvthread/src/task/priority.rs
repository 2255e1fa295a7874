//! Scheduling priorities.

/// Scheduling priority of a GVThread: a worker always takes a runnable
/// GVThread of a higher priority first.
///
/// With `num_low_priority_workers(n > 0)`, `Low` GVThreads run only on those
/// dedicated workers; otherwise ordinary workers run them when nothing of a
/// higher priority is runnable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Priority {
    /// Runs before everything else.
    Critical = 0,
    /// Interactive work.
    High = 1,
    /// The default.
    #[default]
    Normal = 2,
    /// Background work.
    Low = 3,
}

impl Priority {
    pub(crate) fn from_u8(v: u8) -> Priority {
        match v {
            0 => Priority::Critical,
            1 => Priority::High,
            2 => Priority::Normal,
            _ => Priority::Low,
        }
    }
}
