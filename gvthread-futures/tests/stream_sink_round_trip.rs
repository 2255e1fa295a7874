//! Channels between a tokio task and GVThreads: a tokio task feeds a
//! `SendSink`, GVThreads process with blocking `recv`/`send`, and the tokio
//! task collects the results from a `RecvStream`.

mod common;

use futures::{SinkExt, StreamExt};
use gvthread_futures::{ReceiverExt, SenderExt};

const ITEMS: u64 = 10_000;
const WORKERS: usize = 8;

fn round_trip(capacity: usize) {
    let tokio = common::tokio_rt(2);
    let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(2));

    let (in_tx, in_rx) = gvthread::channel::<u64>(capacity);
    let (out_tx, out_rx) = gvthread::channel::<u64>(capacity);

    // GVThreads: blocking style, no futures.
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (rx, tx) = (in_rx.clone(), out_tx.clone());
            rt.handle().spawn(move |_| {
                let mut n = 0;
                for v in rx {
                    tx.send(v * 2).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    drop((in_rx, out_tx));

    let (sum, count, processed) = tokio.block_on(async move {
        let producer = tokio::spawn(async move {
            let mut sink = in_tx.into_sink();
            sink.send_all(&mut futures::stream::iter(1..=ITEMS).map(Ok)).await.unwrap();
            sink.close().await.unwrap(); // the GVThreads' loops end
        });
        let consumer = tokio::spawn(async move {
            let mut stream = out_rx.into_stream();
            let (mut sum, mut count) = (0, 0);
            while let Some(v) = stream.next().await {
                sum += v;
                count += 1;
            }
            assert!(futures::stream::FusedStream::is_terminated(&stream));
            (sum, count)
        });
        producer.await.unwrap();
        let mut processed = 0;
        for w in workers {
            processed += w.await.unwrap();
        }
        let (sum, count) = consumer.await.unwrap();
        (sum, count, processed)
    });
    assert_eq!(count, ITEMS);
    assert_eq!(processed, ITEMS);
    assert_eq!(sum, ITEMS * (ITEMS + 1));
}

#[test]
fn stream_sink_round_trip_bounded() {
    let _dog = common::Watchdog::new("stream_sink_round_trip_bounded", 60);
    round_trip(16);
}

#[test]
fn stream_sink_round_trip_rendezvous() {
    let _dog = common::Watchdog::new("stream_sink_round_trip_rendezvous", 60);
    round_trip(0);
}

#[test]
fn async_recv_and_send_from_tokio_with_gvthreads() {
    // The single-operation futures, tokio task on one side, GVThread blocking
    // on the other, in both directions.
    let _dog = common::Watchdog::new("async_recv_and_send_from_tokio_with_gvthreads", 60);
    let tokio = common::tokio_rt(1);
    let rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    let (ping_tx, ping_rx) = gvthread::channel::<u32>(0);
    let (pong_tx, pong_rx) = gvthread::channel::<u32>(1);
    let echo = rt.handle().spawn(move |_| {
        for v in ping_rx {
            pong_tx.send(v + 1).unwrap();
        }
    });
    let total = tokio.block_on(async move {
        let mut total = 0;
        for i in 0..1_000 {
            ping_tx.send_async(i).await.unwrap();
            total += pong_rx.recv_async().await.unwrap();
        }
        drop(ping_tx);
        echo.await.unwrap();
        assert!(pong_rx.recv_async().await.is_err());
        total
    });
    assert_eq!(total, (1..=1_000).sum::<u32>());
}

#[test]
fn sink_after_close_hands_the_item_back() {
    let (tx, rx) = gvthread::channel::<u8>(1);
    gvthread_futures::block_on(async move {
        let mut sink = tx.into_sink();
        sink.send(1).await.unwrap();
        sink.close().await.unwrap();
        assert_eq!(sink.send(2).await.unwrap_err().0, 2);
    });
    assert_eq!(rx.recv(), Ok(1));
    assert!(rx.recv().is_err()); // the sink's sender is gone: disconnected
}
