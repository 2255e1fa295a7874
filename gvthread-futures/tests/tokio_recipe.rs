//! The two ways docs/tokio.md enters tokio's context on gvthread workers.

mod common;

use std::cell::RefCell;
use std::time::Duration;

use gvthread_futures::block_on;

/// Sleeps on tokio timers and binds a tokio socket from GVThreads that move
/// between workers.
fn use_tokio(rt: &mut gvthread::Runtime) {
    let n = rt.block_on(|| {
        let handles: Vec<_> = (0..64u64)
            .map(|i| {
                gvthread::spawn(move |_| {
                    for _ in 0..3 {
                        block_on(tokio::time::sleep(Duration::from_millis(1)));
                        gvthread::yield_now();
                    }
                    let l = block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
                    assert!(l.local_addr().unwrap().port() != 0);
                    i
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(n, 64 * 63 / 2);
}

#[test]
fn recipe_forget_enter_guard() {
    let _dog = common::Watchdog::new("recipe_forget_enter_guard", 60);
    let tokio = common::tokio_rt(1);
    let mut rt = common::gv_rt_in(&tokio, 2);
    use_tokio(&mut rt);
}

thread_local! {
    static TOKIO: RefCell<Option<tokio::runtime::EnterGuard<'static>>> = const { RefCell::new(None) };
}

#[test]
fn recipe_guard_in_a_thread_local_dropped_at_worker_stop() {
    let _dog = common::Watchdog::new("recipe_guard_in_a_thread_local_dropped_at_worker_stop", 60);
    let tokio = common::tokio_rt(1);
    let handle: &'static tokio::runtime::Handle = Box::leak(Box::new(tokio.handle().clone()));
    let config = gvthread::SchedulerConfig::default()
        .num_workers(2)
        .on_worker_start(move || TOKIO.with(|g| *g.borrow_mut() = Some(handle.enter())))
        .on_worker_stop(|| TOKIO.with(|g| drop(g.borrow_mut().take())));
    let mut rt = gvthread::Runtime::new(config);
    use_tokio(&mut rt);
    drop(rt); // workers stop and drop their guards, in order, on their own threads
}

/// The first-class form: `worker_context` keeps each worker's and spare's guard for the life of
/// that thread, and `Runtime::block_on` takes the async body directly.
#[test]
fn recipe_worker_context() {
    let _dog = common::Watchdog::new("recipe_worker_context", 60);
    let tokio = common::tokio_rt(1);
    // `EnterGuard` borrows the handle: leak one clone so that it lives for the program.
    let handle: &'static tokio::runtime::Handle = Box::leak(Box::new(tokio.handle().clone()));
    let config = gvthread::SchedulerConfig::default().num_workers(2).worker_context(move || handle.enter());
    let mut rt = gvthread::Runtime::new(config);
    use_tokio(&mut rt);
    let slept = rt.block_on(async {
        let t = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(2)).await;
        t.elapsed() >= Duration::from_millis(2)
    });
    assert!(slept);
    drop(rt);
}

/// Inside `#[tokio::main]`: the gvthread runtime is built (and dropped) on a tokio worker
/// thread; dropping it there waits for its workers, which is fine on a multi-thread runtime.
#[test]
fn recipe_inside_tokio_main() {
    let _dog = common::Watchdog::new("recipe_inside_tokio_main", 60);
    let tokio = common::tokio_rt(2);
    tokio.block_on(async {
        let handle: &'static tokio::runtime::Handle = Box::leak(Box::new(tokio::runtime::Handle::current()));
        let rt = gvthread::Runtime::new(
            gvthread::SchedulerConfig::default().num_workers(2).worker_context(move || handle.enter()),
        );
        let h = rt.handle().spawn(|_| {
            block_on(tokio::time::sleep(Duration::from_millis(1)));
            21 * 2
        });
        assert_eq!(h.await.unwrap(), 42);
        drop(rt);
    });
}
