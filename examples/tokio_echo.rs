//! A tokio::net echo server whose connection handlers are GVThreads written in
//! blocking style, and a tokio client that checks every byte.
//!
//! * The gvthread runtime's worker and spare threads enter a multi-thread
//!   tokio runtime (`SchedulerConfig::worker_context`, see docs/tokio.md), so
//!   tokio sockets work inside GVThreads through `gvthread_futures::block_on`.
//! * The server accepts on 127.0.0.1 (a port the OS picks) in one GVThread and
//!   hands each connection to its own GVThread: `block_on(sock.read(..))`,
//!   `block_on(sock.write_all(..))`, no `async` in sight.
//! * The clients are ordinary tokio tasks: each opens a connection, sends
//!   messages of varying sizes, and checks each echo byte for byte.
//!
//! Loopback only; it serves exactly the connections the clients open and
//! exits.
//!
//! ```text
//! cargo run --release --example tokio_echo [-- CONNECTIONS MESSAGES]
//! ```

use std::time::Instant;

use gvthread::{Runtime, SchedulerConfig};
use gvthread_futures::block_on;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The `m`-th message of connection `c`: 1 to 4096 bytes of a pattern that
/// differs per connection and message.
fn message(c: usize, m: usize) -> Vec<u8> {
    let len = 1 + (c * 7919 + m * 104_729) % 4096;
    (0..len).map(|i| (i ^ c ^ (m << 3)) as u8).collect()
}

/// Echoes until the peer closes; returns the bytes echoed. Blocking style:
/// each `block_on` parks only this GVThread.
fn echo(mut sock: TcpStream) -> usize {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = block_on(sock.read(&mut buf)).expect("server read");
        if n == 0 {
            return total;
        }
        block_on(sock.write_all(&buf[..n])).expect("server write");
        total += n;
    }
}

/// One client connection: sends every message and checks its echo.
async fn client(addr: std::net::SocketAddr, c: usize, messages: usize) -> usize {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let mut back = Vec::new();
    let mut bytes = 0;
    for m in 0..messages {
        let msg = message(c, m);
        sock.write_all(&msg).await.expect("client write");
        back.resize(msg.len(), 0);
        sock.read_exact(&mut back).await.expect("client read");
        assert!(back == msg, "connection {c}, message {m}: echo differs");
        bytes += msg.len();
    }
    bytes
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numeric argument"));
    let connections = args.next().unwrap_or(32);
    let messages = args.next().unwrap_or(500);

    let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // tokio's context on every worker and spare thread, for the thread's whole
    // life (docs/tokio.md). `EnterGuard` borrows the handle, so the handle must
    // live for the program: leak one clone.
    let tokio_handle: &'static tokio::runtime::Handle = Box::leak(Box::new(tokio_rt.handle().clone()));
    let mut rt = Runtime::new(SchedulerConfig::default().worker_context(move || tokio_handle.enter()));

    // Bind inside a GVThread (a tokio socket needs the context to be created);
    // `block_on` takes the async body directly.
    let listener = rt.block_on(async { TcpListener::bind("127.0.0.1:0").await.expect("bind") });
    let addr = listener.local_addr().unwrap();
    println!("echo server on {addr}: {connections} connections x {messages} messages");

    // The server: an accepting GVThread, one handler GVThread per connection.
    let server = rt.handle().spawn(move |_| {
        let handlers: Vec<_> = (0..connections)
            .map(|_| {
                let (sock, _) = block_on(listener.accept()).expect("accept");
                sock.set_nodelay(true).expect("nodelay");
                gvthread::spawn(move |_| echo(sock))
            })
            .collect();
        handlers.into_iter().map(|h| h.join().expect("handler")).sum::<usize>()
    });

    // The clients: tokio tasks. Awaiting the server's JoinHandle from async
    // code does not block tokio's workers.
    let start = Instant::now();
    let (sent, echoed) = tokio_rt.block_on(async move {
        let tasks: Vec<_> = (0..connections).map(|c| tokio::spawn(client(addr, c, messages))).collect();
        let mut sent = 0;
        for t in tasks {
            sent += t.await.expect("client task");
        }
        (sent, server.await.expect("server"))
    });
    let elapsed = start.elapsed();

    assert_eq!(sent, echoed, "server echoed a different number of bytes");
    let round_trips = connections * messages;
    println!(
        "{round_trips} round trips, {:.1} MiB each way, in {:.3} s: {:.0} round trips/s, {:.1} MiB/s",
        sent as f64 / (1024.0 * 1024.0),
        elapsed.as_secs_f64(),
        round_trips as f64 / elapsed.as_secs_f64(),
        sent as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64(),
    );
    println!("every reply matched byte for byte");
    drop(rt); // before tokio's runtime, whose context the workers entered
}
