//! GVThread-local storage: like `thread_local!`, but the values belong to the
//! GVThread, so they follow it when it resumes on another worker thread.

use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sched::machine;

/// Values of one GVThread (or one plain OS thread), indexed by key.
#[derive(Default)]
pub(crate) struct LocalMap(Option<Box<Values>>);

/// One optional boxed value per key index.
type Values = Vec<Option<Box<dyn Any>>>;

impl LocalMap {
    /// Drops every value of `map`. Destructors may create new values (through
    /// `with`, which reaches the map by raw pointer); repeat a few times, like
    /// std does for thread-locals.
    ///
    /// Takes a raw pointer, not `&mut self`: a `&mut` held across the
    /// destructors would let the compiler assume nothing else touches the
    /// map meanwhile, and a value created during teardown would be lost.
    ///
    /// # Safety
    /// `map` must be valid, and only the calling GVThread (or OS thread) may
    /// use it; no reference into it may be live.
    pub(crate) unsafe fn clear(map: *mut LocalMap) {
        for _ in 0..8 {
            // SAFETY: by the contract; the `&mut` lives only for the `take`.
            let values = unsafe { (*map).0.take() };
            match values {
                Some(values) => drop(values),
                None => return,
            }
        }
        // Destructors kept re-creating values: drop what is left, then stop.
        // SAFETY: as above.
        let rest = unsafe { (*map).0.take() };
        std::mem::forget(rest);
    }
}

static NEXT_KEY: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// Storage for code that is not running in a GVThread.
    static OS_THREAD_LOCALS: UnsafeCell<LocalMap> = UnsafeCell::new(LocalMap::default());
}

/// A key for GVThread-local values, made by [`gvthread_local!`](crate::gvthread_local).
///
/// Each GVThread sees its own value, created by the initialiser the first
/// time that GVThread calls [`with`](LocalKey::with) and dropped when the
/// GVThread ends. Unlike a `thread_local!`, a reference obtained through
/// `with` stays valid across `yield_now`, `sleep` and every other blocking
/// gvthread call, even though the GVThread may resume on another OS thread.
/// Code outside GVThreads gets one value per OS thread.
///
/// ```
/// use std::cell::Cell;
/// gvthread::gvthread_local! {
///     static REQUESTS: Cell<u32> = Cell::new(0);
/// }
///
/// let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
/// rt.block_on(|| {
///     let h = gvthread::spawn(|_| {
///         REQUESTS.with(|r| r.set(r.get() + 1));
///         gvthread::yield_now(); // may resume elsewhere: the value follows
///         REQUESTS.with(|r| r.get())
///     });
///     assert_eq!(h.join().unwrap(), 1);
///     assert_eq!(REQUESTS.with(|r| r.get()), 0); // a different GVThread
/// });
/// ```
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    key: AtomicUsize,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init, key: AtomicUsize::new(0) }
    }

    fn index(&self) -> usize {
        let k = self.key.load(Ordering::Acquire);
        if k != 0 {
            return k - 1;
        }
        let fresh = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        match self.key.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh - 1,
            Err(existing) => existing - 1,
        }
    }

    /// Calls `f` with the caller's value, creating it first if needed.
    ///
    /// # Panics
    /// If the initialiser of this key calls `with` on the same key.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let idx = self.index();
        let map = current_map();
        // SAFETY: `map` is the calling GVThread's (or OS thread's) map, which
        // only the caller touches and which outlives this call; no reference
        // into the Vec is held across the initialiser or `f`.
        let existing = unsafe { lookup::<T>(map, idx) };
        let ptr = match existing {
            Some(p) => p,
            None => {
                let value: Box<dyn Any> = Box::new((self.init)());
                let p = (&*value as *const dyn Any).cast::<T>();
                // SAFETY: as above; the initialiser has returned.
                unsafe {
                    let values = (*map).0.get_or_insert_with(Default::default);
                    if values.len() <= idx {
                        values.resize_with(idx + 1, || None);
                    }
                    assert!(values[idx].is_none(), "gvthread_local initialiser accessed its own key");
                    values[idx] = Some(value);
                }
                p
            }
        };
        // SAFETY: the value is boxed, so it stays put while the Vec grows; it
        // is dropped only when its GVThread (or OS thread) ends, after `f`.
        f(unsafe { &*ptr })
    }
}

/// # Safety
/// `map` must be valid and not mutably borrowed elsewhere.
unsafe fn lookup<T: 'static>(map: *mut LocalMap, idx: usize) -> Option<*const T> {
    // SAFETY: by the caller's contract.
    let values = unsafe { (*map).0.as_ref()? };
    let v = values.get(idx)?.as_ref()?;
    v.downcast_ref::<T>().map(|r| r as *const T)
}

fn current_map() -> *mut LocalMap {
    match machine::current_gvthread() {
        // SAFETY: the header of the running GVThread is valid while it runs.
        Some((m, slot)) => unsafe { (*m.shared.header(slot)).locals.get() },
        None => OS_THREAD_LOCALS.with(|c| c.get()),
    }
}

/// Declares GVThread-local statics ([`LocalKey`]s).
///
/// ```
/// use std::cell::RefCell;
/// gvthread::gvthread_local! {
///     /// A per-GVThread buffer.
///     pub static BUF: RefCell<Vec<u8>> = RefCell::new(Vec::new());
///     static DEPTH: std::cell::Cell<usize> = std::cell::Cell::new(0);
/// }
/// BUF.with(|b| b.borrow_mut().push(1));
/// ```
#[macro_export]
macro_rules! gvthread_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn __gvthread_local_init() -> $t { $init }
            __gvthread_local_init
        });
        $crate::gvthread_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident : $t:ty = $init:expr) => {
        $crate::gvthread_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
