//! `block_on`: driving a future to completion from blocking code.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use super::waker::{Parker, Probe};

/// Runs `future` to completion on the caller's stack and returns its output.
///
/// Inside a GVThread only that GVThread waits between polls: its worker runs
/// other GVThreads until the future's `Waker` is woken (from any thread). On
/// any other thread the OS thread parks, and the waker unparks it.
///
/// The future need not be `Send` (it never leaves the caller's stack), and
/// calls may nest: a future polled by `block_on` may itself call `block_on`.
///
/// This is the engine of `gvthread_futures::block_on` and of
/// `#[gvthread::main] async fn`; see those for examples.
///
/// Cost: a future that is ready on its first poll allocates nothing; one that
/// is not allocates one waker for the whole call, reused by every later poll.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);

    // First poll with the free borrowed waker: most ready futures stop here.
    let probe = Probe::new(Parker::current());
    if let Poll::Ready(out) = probe.with_waker(|w| future.as_mut().poll(&mut Context::from_waker(w))) {
        return out;
    }

    // Pending: one owned waker for the rest of the call.
    let signal = probe.into_signal();
    let waker = signal.waker();
    let mut cx = Context::from_waker(&waker);
    // Stack compaction (memory/compact.rs): the future is pinned on our
    // stack and may have registered parts of itself with other threads.
    let _exposed = crate::memory::StackExposed::enter();
    loop {
        signal.wait();
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::block_on;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};

    /// Pending `n` times, waking itself each time through `wake`.
    struct SelfWake<W> {
        left: usize,
        wake: W,
    }

    impl<W: Fn(&Waker) + Unpin> Future for SelfWake<W> {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            if self.left == 0 {
                return Poll::Ready(7);
            }
            self.left -= 1;
            (self.wake)(cx.waker());
            Poll::Pending
        }
    }

    #[test]
    fn ready_future() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
    }

    #[test]
    fn wake_by_ref_during_poll() {
        assert_eq!(block_on(SelfWake { left: 3, wake: |w: &Waker| w.wake_by_ref() }), 7);
    }

    #[test]
    fn clone_then_wake_from_another_thread() {
        let f = SelfWake {
            left: 3,
            wake: |w: &Waker| {
                let w = w.clone();
                std::thread::spawn(move || w.wake());
            },
        };
        assert_eq!(block_on(f), 7);
    }

    #[test]
    fn wakes_share_one_allocation() {
        let seen = Arc::new(AtomicUsize::new(0));
        let first: std::sync::Mutex<Option<Waker>> = std::sync::Mutex::new(None);
        let f = SelfWake {
            left: 3,
            wake: |w: &Waker| {
                let mut first = first.lock().unwrap();
                match &*first {
                    Some(old) if old.will_wake(w) => {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => *first = Some(w.clone()),
                }
                w.wake_by_ref();
            },
        };
        assert_eq!(block_on(f), 7);
        // Polls 2 and 3 use the waker cloned during poll 1.
        assert_eq!(seen.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn not_send_and_nested() {
        let rc = Rc::new(5);
        let out = block_on(async {
            let inner = block_on(SelfWake { left: 2, wake: |w: &Waker| w.wake_by_ref() });
            *rc + inner
        });
        assert_eq!(out, 12);
    }
}
