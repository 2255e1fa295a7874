//! Memory given back at shutdown.

mod common;

use std::time::Duration;

/// Bytes of this process's mappings with no name (anonymous) of at least 1 GiB:
/// the stack reservations (a chunk is 4 GiB).
fn big_anonymous_mappings() -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let range = parts.next()?;
            let name = parts.nth(4);
            if name.is_some() {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let len = usize::from_str_radix(b, 16).ok()? - usize::from_str_radix(a, 16).ok()?;
            (len >= 1 << 30).then_some(len)
        })
        .sum()
}

#[test]
fn stacks_are_unmapped_at_shutdown_even_if_a_waker_outlives_the_runtime() {
    if !common::isolated(
        "stacks_are_unmapped_at_shutdown_even_if_a_waker_outlives_the_runtime",
        Duration::from_secs(60),
    ) {
        return;
    }
    let before = big_anonymous_mappings();
    let mut rt = common::rt(1);
    // A waker for a GVThread, kept past the runtime's life.
    let waker = rt.block_on(|| {
        struct Grab(Option<std::task::Waker>);
        impl std::future::Future for Grab {
            type Output = std::task::Waker;
            fn poll(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::task::Waker> {
                std::task::Poll::Ready(self.0.take().unwrap_or_else(|| cx.waker().clone()))
            }
        }
        gvthread::__private::block_on_future(Grab(None))
    });
    assert!(big_anonymous_mappings() > before, "the runtime reserved no chunk?");
    drop(rt);
    assert_eq!(big_anonymous_mappings(), before, "stack reservations outlived the runtime");
    waker.wake(); // harmless: the GVThread is long gone
}
