//! Errors of runtime construction and spawning.

use std::error::Error;
use std::fmt;
use std::io;

/// Why a [`Runtime`](crate::Runtime) could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A configuration value is out of range.
    InvalidConfig {
        /// The [`SchedulerConfig`](crate::SchedulerConfig) setter at fault.
        field: &'static str,
        /// What is accepted.
        reason: String,
    },
    /// The OS refused to reserve address space for GVThread stacks.
    AddressSpace(io::Error),
    /// This kernel needs one memory mapping per guard page and
    /// `vm.max_map_count` is too low for `max_gvthreads`.
    MapCountTooLow {
        /// Mappings the configuration needs.
        needed: usize,
        /// The current `vm.max_map_count`.
        limit: usize,
    },
    /// The OS refused to start a worker or timer thread.
    ThreadSpawn(io::Error),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::InvalidConfig { field, reason } => {
                write!(f, "invalid gvthread configuration: {field} {reason}")
            }
            RuntimeError::AddressSpace(e) => {
                write!(
                    f,
                    "could not reserve address space for GVThread stacks: {e} (lower max_gvthreads or free address space)"
                )
            }
            RuntimeError::MapCountTooLow { needed, limit } => write!(
                f,
                "this kernel lacks guard markers (Linux 6.13+), so each GVThread needs two memory mappings: \
                 max_gvthreads needs about {needed} but vm.max_map_count is {limit}; raise it \
                 (sysctl -w vm.max_map_count={needed}) or lower max_gvthreads"
            ),
            RuntimeError::ThreadSpawn(e) => {
                write!(f, "could not start a gvthread runtime thread: {e}")
            }
        }
    }
}

impl Error for RuntimeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            RuntimeError::AddressSpace(e) | RuntimeError::ThreadSpawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a GVThread could not be spawned.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// `max_gvthreads` GVThreads are alive.
    AtCapacity {
        /// The configured limit.
        max: usize,
    },
    /// The runtime is shutting down or has shut down.
    ShutDown,
    /// Called outside a GVThread without a [`Handle`](crate::Handle).
    NoRuntime,
    /// The OS refused stack memory.
    Memory(io::Error),
    /// The runtime was built before this process was forked from its
    /// parent: in the child it has no worker or timer threads (see the
    /// `fork()` section of `docs/safety.md`).
    Forked,
    /// The requested stack size is larger than the largest size class.
    StackSize {
        /// Bytes asked for.
        requested: usize,
        /// The largest stack size.
        max: usize,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::AtCapacity { max } => {
                write!(f, "cannot spawn: {max} GVThreads are alive (raise SchedulerConfig::max_gvthreads)")
            }
            SpawnError::ShutDown => {
                write!(f, "cannot spawn: the gvthread runtime is shutting down")
            }
            SpawnError::NoRuntime => write!(
                f,
                "cannot spawn: not inside a GVThread; use Runtime::block_on, or Handle::spawn from other threads"
            ),
            SpawnError::Memory(e) => {
                write!(f, "cannot spawn: the OS refused GVThread stack memory: {e}")
            }
            SpawnError::Forked => write!(f, "cannot spawn: {}", crate::util::fork::FORKED_MESSAGE),
            SpawnError::StackSize { requested, max } => {
                write!(f, "cannot spawn: a stack of {requested} bytes exceeds the largest stack size ({max} bytes)")
            }
        }
    }
}

impl Error for SpawnError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SpawnError::Memory(e) => Some(e),
            _ => None,
        }
    }
}
