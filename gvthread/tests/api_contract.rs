//! Compiles against every name and signature of `api.md` (the public API
//! contract outside programs rely on), including the auto-trait bounds.

use std::time::Duration;

use gvthread::{
    CancellationToken, GVThreadId, Handle, JoinError, JoinHandle, Priority, Receiver, RecvError, RecvTimeoutError,
    Runtime, RuntimeError, SchedMutex, SchedMutexGuard, SchedulerConfig, SendError, SendTimeoutError, Sender,
    SpawnError, TryRecvError, TrySendError,
};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn error<T: std::error::Error + std::fmt::Display + std::fmt::Debug>() {}
fn future<F: std::future::Future>() {}

#[test]
fn auto_traits_and_error_traits() {
    send_sync::<Handle>();
    send_sync::<JoinHandle<u32>>();
    send_sync::<Sender<u32>>();
    send_sync::<Receiver<u32>>();
    send_sync::<SchedMutex<u32>>();
    send_sync::<CancellationToken>();
    send::<Runtime>();
    send::<JoinError>();
    future::<JoinHandle<u32>>();
    error::<JoinError>();
    error::<SpawnError>();
    error::<RuntimeError>();
    error::<SendError<u32>>();
    error::<TrySendError<u32>>();
    error::<SendTimeoutError<u32>>();
    error::<RecvError>();
    error::<TryRecvError>();
    error::<RecvTimeoutError>();
    // Copy, Eq, Hash, Debug, Display.
    fn id_traits<T: Copy + Eq + std::hash::Hash + std::fmt::Debug + std::fmt::Display>() {}
    id_traits::<GVThreadId>();
    fn clone<T: Clone>() {}
    clone::<Handle>();
    clone::<CancellationToken>();
    clone::<Sender<u32>>();
    clone::<Receiver<u32>>();
    assert_eq!(Priority::default(), Priority::Normal);
    assert_eq!(
        [Priority::Critical as u8, Priority::High as u8, Priority::Normal as u8, Priority::Low as u8],
        [0, 1, 2, 3]
    );
}

#[test]
fn signatures() {
    let config: SchedulerConfig = SchedulerConfig::default()
        .num_workers(2)
        .num_low_priority_workers(0)
        .max_gvthreads(10_000)
        .time_slice(Duration::from_millis(10))
        .grace_period(Duration::from_millis(1))
        .timer_interval(Duration::from_millis(1))
        .enable_forced_preempt(true)
        .debug_logging(false)
        .on_worker_start(|| {})
        .on_worker_stop(|| {});
    let mut rt: Runtime = Runtime::try_new(config).expect("runtime");
    let handle: Handle = rt.handle();
    let r: Result<JoinHandle<u8>, SpawnError> = handle.try_spawn(|_t: CancellationToken| 1u8);
    assert_eq!(r.unwrap().join().unwrap(), 1);
    let out: u32 = rt.block_on(|| {
        let h: JoinHandle<u32> = gvthread::spawn(|_t: CancellationToken| 2);
        let _id: GVThreadId = h.id();
        let _done: bool = h.is_finished();
        h.cancel();
        let p: JoinHandle<u32> = gvthread::spawn_with_priority(Priority::High, |_| 3);
        let t: Result<JoinHandle<u32>, SpawnError> = gvthread::try_spawn(|_| 4);
        gvthread::yield_now();
        gvthread::sleep(Duration::from_millis(1));
        let _me: Option<GVThreadId> = gvthread::current_id();
        gvthread::safepoint!();
        let (tx, rx): (Sender<u32>, Receiver<u32>) = gvthread::channel::<u32>(1);
        let _: Result<(), SendError<u32>> = tx.send(1);
        let _: Result<(), TrySendError<u32>> = tx.try_send(2);
        let _: Result<(), SendTimeoutError<u32>> = tx.send_timeout(3, Duration::from_millis(1));
        let _: Result<u32, RecvError> = rx.recv();
        let _: Result<u32, TryRecvError> = rx.try_recv();
        let _: Result<u32, RecvTimeoutError> = rx.recv_timeout(Duration::from_millis(1));
        drop(tx);
        for _ in rx {}
        let m: SchedMutex<u32> = SchedMutex::new(5);
        {
            let g: SchedMutexGuard<'_, u32> = m.lock();
            assert_eq!(*g, 5);
        }
        let _: Option<SchedMutexGuard<'_, u32>> = m.try_lock();
        let five: u32 = m.into_inner();
        let tok = CancellationToken::new();
        let child: CancellationToken = tok.child();
        tok.cancel();
        assert!(child.is_cancelled());
        let e: Result<u32, JoinError> = gvthread::spawn(|_| -> u32 { panic!("p") }).join();
        let e = e.unwrap_err();
        let (_p, _c): (bool, bool) = (e.is_panic(), e.is_cancelled());
        let _payload: Box<dyn std::any::Any + Send> = e.into_panic();
        h.join().unwrap_or(0) + p.join().unwrap() + t.unwrap().join().unwrap() + five
    });
    assert_eq!(out, 2 + 3 + 4 + 5);
    rt.shutdown_timeout(Duration::from_secs(5));
    // The runtime-level free functions outside a GVThread.
    assert!(matches!(gvthread::try_spawn(|_| ()), Err(SpawnError::NoRuntime)));
    let rt2 = Runtime::new(SchedulerConfig::default().num_workers(1));
    drop(rt2);
}

#[test]
fn futures_crate_contract() {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(1));
    let v = rt.block_on(|| {
        let a: u32 = gvthread_futures::block_on(async { 1 });
        let h: JoinHandle<u32> = gvthread_futures::spawn_future(async { 2 });
        a + h.join().unwrap()
    });
    assert_eq!(v, 3);
}

/// The "first hour" additions of api.md: `block_on` of a future, `Handle::current`,
/// `Handle::spawn_with_priority`, `SchedulerConfig::worker_context`, `Handle::dump`.
#[test]
fn first_hour_signatures() {
    struct NotSendGuard(#[allow(dead_code)] std::rc::Rc<()>);
    let config: SchedulerConfig =
        SchedulerConfig::default().num_workers(1).worker_context(|| NotSendGuard(std::rc::Rc::new(())));
    let mut rt: Runtime = Runtime::new(config);
    let from_future: u32 = rt.block_on(async { 1u32 });
    let from_closure: u32 = rt.block_on(|| 2u32);
    let handle: Handle = rt.block_on(Handle::current);
    let j: JoinHandle<u8> = handle.spawn_with_priority(Priority::High, |_t: CancellationToken| 3u8);
    assert_eq!((from_future, from_closure, j.join().unwrap()), (1, 2, 3));
    let dump: String = handle.dump();
    assert!(dump.starts_with("gvthread dump:"), "{dump}");
}
