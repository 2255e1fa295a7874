//! `Builder`: spawn options in the shape of `std::thread::Builder`.

use super::join::JoinHandle;
use super::priority::Priority;
use super::spawn::{SpawnOptions, spawn_from_gvthread, spawn_with};
use crate::memory::{MAX_SLOT, StackClass};
use crate::runtime::error::SpawnError;
use crate::runtime::handle::Handle;
use crate::sync::cancel::CancellationToken;

/// Options for one spawn: name, stack size, priority. Shaped like
/// [`std::thread::Builder`].
///
/// The stack size is rounded up to a size class (a power of two from
/// 16 KiB to 512 MiB; the class's slot includes one 4 KiB guard page, and
/// from 512 KiB up the stack may start up to 1/64 of the slot below its end,
/// which spreads the stack tops of neighbouring slots over the caches).
/// Only address space is rounded: physical pages are used as the stack
/// grows, so a small class saves page tables and address space, not the
/// pages a shallow GVThread touches. Classes below 2 MiB pack several
/// stacks into one page-table page, which makes a million idle GVThreads
/// cheaper. A name shows in the stack overflow report and in the
/// [`JoinError`](crate::JoinError) of a panic.
///
/// ```
/// use gvthread::{Builder, Priority, Runtime, SchedulerConfig};
///
/// let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
/// let v = rt.block_on(|| {
///     let h = Builder::new()
///         .name("parser".to_string())
///         .stack_size(256 * 1024)
///         .priority(Priority::High)
///         .spawn(|_token| 6 * 7)
///         .expect("spawn");
///     h.join().unwrap()
/// });
/// assert_eq!(v, 42);
///
/// // From outside a GVThread, spawn on a runtime through its handle:
/// let bad = Builder::new().name("worker-7".into()).spawn_on(&rt.handle(), |_| -> u8 { panic!("boom") });
/// let err = bad.unwrap().join().unwrap_err();
/// assert_eq!(err.name(), Some("worker-7"));
/// assert_eq!(err.to_string(), "GVThread 'worker-7' panicked: boom");
/// ```
#[derive(Debug, Default)]
#[must_use = "a Builder does nothing until spawn is called"]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    priority: Priority,
}

impl Builder {
    /// Options with every default: no name, the runtime's stack size
    /// ([`SchedulerConfig::stack_size`](crate::SchedulerConfig::stack_size)),
    /// [`Priority::Normal`].
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the GVThread (shown in overflow reports and panics' `JoinError`).
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }

    /// Stack size in bytes, rounded up to a size class; at most 512 MiB
    /// (larger sizes make `spawn` fail with [`SpawnError::StackSize`]).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Scheduling priority (default [`Priority::Normal`]).
    pub fn priority(mut self, priority: Priority) -> Builder {
        self.priority = priority;
        self
    }

    /// Spawns on the runtime of the calling GVThread; fails with
    /// [`SpawnError::NoRuntime`] elsewhere (use [`spawn_on`](Self::spawn_on)).
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_from_gvthread(self.options()?, f)
    }

    /// Spawns on the runtime of `handle`, from any thread.
    pub fn spawn_on<F, T>(self, handle: &Handle, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce(CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_with(&handle.shared, self.options()?, f)
    }

    /// The spawn options collected, the stack size rounded up to its class.
    fn options(self) -> Result<SpawnOptions, SpawnError> {
        let class = match self.stack_size {
            None => None,
            Some(bytes) => {
                Some(StackClass::for_size(bytes).ok_or(SpawnError::StackSize { requested: bytes, max: MAX_SLOT })?)
            }
        };
        Ok(SpawnOptions { prio: self.priority, class, name: self.name.map(String::into_boxed_str) })
    }
}
