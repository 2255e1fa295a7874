//! Futures-bridge benchmarks: gvthread_futures against tokio doing the same.
//!
//! * `block_on_ready`: `block_on(ready(1))` inside a GVThread, against
//!   tokio's `Runtime::block_on(ready(1))` (current-thread and multi-thread
//!   runtimes) and `gvthread_futures::block_on` on a plain thread.
//! * `oneshot_wake`: a waiter blocks on a `tokio::sync::oneshot` that a tokio
//!   task completes; one iteration is one request + wake-up round trip. The
//!   waiter is a GVThread in `block_on` against a tokio task in `.await`
//!   (and, for reference, `block_on` on a plain thread).
//! * `echo`: 8 loopback TCP connections x 1,000 round trips of 64 bytes,
//!   clients are tokio tasks; the server's per-connection handlers are
//!   GVThreads in blocking style (`block_on(sock.read(..))`) against tokio
//!   tasks. One iteration is the whole exchange.
//!
//! Run with `cargo bench -p benches --bench futures`.

use std::future::ready;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use gvthread::{Runtime, SchedulerConfig};
use gvthread_futures::block_on;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// A two-worker tokio runtime with its drivers (what `#[tokio::main]` builds).
fn tokio_multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A gvthread runtime whose workers entered `tokio` (docs/tokio.md).
fn gvthread_in(tokio: &tokio::runtime::Runtime, workers: usize) -> Runtime {
    let handle = tokio.handle().clone();
    Runtime::new(SchedulerConfig::default().num_workers(workers).on_worker_start(move || {
        std::mem::forget(handle.enter());
    }))
}

fn block_on_ready(c: &mut Criterion) {
    let mut group = c.benchmark_group("block_on_ready");
    group.sampling_mode(SamplingMode::Linear);

    let mut gv = Runtime::new(SchedulerConfig::default().num_workers(1));
    group.bench_function("gvthread_in_gvthread", |b| {
        b.iter_custom(|iters| {
            gv.block_on(move || {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(block_on(ready(black_box(i))));
                }
                start.elapsed()
            })
        })
    });
    drop(gv);

    group.bench_function("gvthread_plain_thread", |b| b.iter(|| black_box(block_on(ready(black_box(1u64))))));

    let tk = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    group.bench_function("tokio_current_thread", |b| b.iter(|| black_box(tk.block_on(ready(black_box(1u64))))));
    drop(tk);

    let tk = tokio_multi();
    group.bench_function("tokio_multi_thread", |b| b.iter(|| black_box(tk.block_on(ready(black_box(1u64))))));
    drop(tk);

    group.finish();
}

/// A tokio task that completes every oneshot it is sent.
fn responder(tokio: &tokio::runtime::Runtime) -> mpsc::UnboundedSender<oneshot::Sender<u64>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<u64>>();
    tokio.spawn(async move {
        let mut n = 0;
        while let Some(reply) = rx.recv().await {
            n += 1;
            let _ = reply.send(n);
        }
    });
    tx
}

fn oneshot_wake(c: &mut Criterion) {
    let mut group = c.benchmark_group("oneshot_wake");
    group.sampling_mode(SamplingMode::Linear);
    let tk = tokio_multi();

    let mut gv = gvthread_in(&tk, 1);
    let requests = responder(&tk);
    group.bench_function("gvthread", |b| {
        b.iter_custom(|iters| {
            let requests = requests.clone();
            gv.block_on(move || {
                let start = Instant::now();
                for _ in 0..iters {
                    let (tx, rx) = oneshot::channel();
                    requests.send(tx).unwrap();
                    black_box(block_on(rx).unwrap());
                }
                start.elapsed()
            })
        })
    });
    drop(gv);

    // Reference: the same wait on a plain thread (park/unpark of an OS thread).
    group.bench_function("plain_thread_block_on", |b| {
        b.iter(|| {
            let (tx, rx) = oneshot::channel();
            requests.send(tx).unwrap();
            black_box(block_on(rx).unwrap())
        })
    });

    group.bench_function("tokio_task", |b| {
        b.iter_custom(|iters| {
            let requests = requests.clone();
            tk.block_on(async move {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (tx, rx) = oneshot::channel();
                        requests.send(tx).unwrap();
                        black_box(rx.await.unwrap());
                    }
                    start.elapsed()
                })
                .await
                .unwrap()
            })
        })
    });
    drop(requests);
    drop(tk);
    group.finish();
}

const CONNECTIONS: usize = 8;
const ROUND_TRIPS: usize = 1_000;
const MESSAGE: usize = 64;

/// The client side of one `echo` iteration: tokio tasks, one per connection.
async fn clients(addr: std::net::SocketAddr) {
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            tokio::spawn(async move {
                let mut sock = TcpStream::connect(addr).await.unwrap();
                sock.set_nodelay(true).unwrap();
                let msg = [c as u8; MESSAGE];
                let mut back = [0u8; MESSAGE];
                for _ in 0..ROUND_TRIPS {
                    sock.write_all(&msg).await.unwrap();
                    sock.read_exact(&mut back).await.unwrap();
                    assert_eq!(back, msg);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Echoes one connection, blocking style (inside a GVThread).
fn gvthread_handler(mut sock: TcpStream) {
    sock.set_nodelay(true).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        let n = block_on(sock.read(&mut buf)).unwrap();
        if n == 0 {
            return;
        }
        block_on(sock.write_all(&buf[..n])).unwrap();
    }
}

/// Echoes one connection as a tokio task.
async fn tokio_handler(mut sock: TcpStream) {
    sock.set_nodelay(true).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        let n = sock.read(&mut buf).await.unwrap();
        if n == 0 {
            return;
        }
        sock.write_all(&buf[..n]).await.unwrap();
    }
}

fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo");
    group.sample_size(10).throughput(Throughput::Elements((CONNECTIONS * ROUND_TRIPS) as u64));
    let tk = tokio_multi();

    let mut gv = gvthread_in(&tk, 2);
    group.bench_function("gvthread_handlers", |b| {
        b.iter(|| {
            let listener = gv.block_on(|| block_on(TcpListener::bind("127.0.0.1:0")).unwrap());
            let addr = listener.local_addr().unwrap();
            let server = gv.handle().spawn(move |_| {
                let handlers: Vec<_> = (0..CONNECTIONS)
                    .map(|_| {
                        let (sock, _) = block_on(listener.accept()).unwrap();
                        gvthread::spawn(move |_| gvthread_handler(sock))
                    })
                    .collect();
                handlers.into_iter().for_each(|h| h.join().unwrap());
            });
            tk.block_on(async move {
                clients(addr).await;
                server.await.unwrap();
            });
        })
    });
    drop(gv);

    group.bench_function("tokio_handlers", |b| {
        b.iter(|| {
            tk.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let server = tokio::spawn(async move {
                    let mut handlers = Vec::new();
                    for _ in 0..CONNECTIONS {
                        let (sock, _) = listener.accept().await.unwrap();
                        handlers.push(tokio::spawn(tokio_handler(sock)));
                    }
                    for h in handlers {
                        h.await.unwrap();
                    }
                });
                clients(addr).await;
                server.await.unwrap();
            })
        })
    });
    drop(tk);
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = block_on_ready, oneshot_wake, echo
}
criterion_main!(benches);
