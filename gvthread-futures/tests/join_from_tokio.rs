//! A tokio task spawns GVThreads and awaits their JoinHandles without
//! blocking tokio's workers.

mod common;

use std::time::Duration;

const GVTHREADS: u64 = 1_000;

#[test]
fn tokio_task_awaits_1000_gvthread_join_handles() {
    let _dog = common::Watchdog::new("tokio_task_awaits_1000_gvthread_join_handles", 60);
    let tokio = common::tokio_rt(2);
    let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));
    let handle = rt.handle();

    let total = tokio.block_on(async move {
        let task = tokio::spawn(async move {
            let joins: Vec<_> = (0..GVTHREADS)
                .map(|i| {
                    handle.spawn(move |_| {
                        if i % 10 == 0 {
                            gvthread::sleep(Duration::from_millis(1)); // some finish late
                        }
                        i * 2
                    })
                })
                .collect();
            let mut total = 0;
            for j in joins {
                total += j.await.expect("GVThread result");
            }
            total
        });
        task.await.unwrap()
    });
    assert_eq!(total, GVTHREADS * (GVTHREADS - 1));
    drop(rt);
}

#[test]
fn tokio_current_thread_runtime_awaits_gvthreads() {
    // Awaiting a JoinHandle needs no tokio context at all, so even a
    // current-thread runtime may do it.
    let _dog = common::Watchdog::new("tokio_current_thread_runtime_awaits_gvthreads", 60);
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    let handle = rt.handle();
    let out = tokio.block_on(async move {
        let a = handle.spawn(|_| 1);
        let b = gvthread_futures::spawn_future_on(&handle, async { 2 });
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(out, 3);
}
