//! A loopback TCP echo between GVThreads through tokio::net, written in
//! blocking style with `block_on`.

mod common;

use gvthread_futures::block_on;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 16;
const MESSAGES: usize = 50;

/// The message client `c` sends as its `m`-th.
fn message(c: usize, m: usize) -> Vec<u8> {
    (0..(1 + (c * 31 + m * 17) % 300)).map(|i| (c + m + i) as u8).collect()
}

#[test]
fn tcp_echo_between_gvthreads_through_tokio_net() {
    let _dog = common::Watchdog::new("tcp_echo_between_gvthreads_through_tokio_net", 60);
    let tokio = common::tokio_rt(1);
    let mut rt = common::gv_rt_in(&tokio, 2);

    let echoed = rt.block_on(|| {
        let listener = block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().unwrap();

        // Server: one GVThread accepts, one GVThread per connection echoes.
        let server = gvthread::spawn(move |_| {
            let handlers: Vec<_> = (0..CONNECTIONS)
                .map(|_| {
                    let (mut sock, _) = block_on(listener.accept()).expect("accept");
                    gvthread::spawn(move |_| {
                        let mut buf = [0u8; 512];
                        let mut total = 0;
                        loop {
                            let n = block_on(sock.read(&mut buf)).expect("read");
                            if n == 0 {
                                return total;
                            }
                            block_on(sock.write_all(&buf[..n])).expect("write");
                            total += n;
                        }
                    })
                })
                .collect();
            handlers.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        });

        // Clients: GVThreads that send and check every reply byte for byte.
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|c| {
                gvthread::spawn(move |_| {
                    let mut sock = block_on(TcpStream::connect(addr)).expect("connect");
                    let mut sent = 0;
                    for m in 0..MESSAGES {
                        let msg = message(c, m);
                        block_on(sock.write_all(&msg)).expect("write");
                        let mut back = vec![0u8; msg.len()];
                        block_on(sock.read_exact(&mut back)).expect("read");
                        assert_eq!(back, msg, "client {c} message {m}");
                        sent += msg.len();
                    }
                    block_on(sock.shutdown()).expect("shutdown");
                    sent
                })
            })
            .collect();
        let sent: usize = clients.into_iter().map(|h| h.join().unwrap()).sum();
        let echoed = server.join().unwrap();
        assert_eq!(sent, echoed);
        echoed
    });
    let expected: usize = (0..CONNECTIONS).flat_map(|c| (0..MESSAGES).map(move |m| message(c, m).len())).sum();
    assert_eq!(echoed, expected);
}
