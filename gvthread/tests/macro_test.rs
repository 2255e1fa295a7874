//! `#[gvthread::test]` expansions that actually run: sync and async bodies, options, `Result`
//! returns, panics and the `crate = "..."` option.

use std::sync::atomic::{AtomicUsize, Ordering};

#[gvthread::test]
fn sync_body_runs_inside_a_gvthread() {
    assert!(gvthread::current_id().is_some());
}

#[gvthread::test]
async fn async_body_runs_inside_a_gvthread() {
    assert!(gvthread::current_id().is_some());
}

#[gvthread::test]
async fn async_body_awaits_a_join_handle() {
    let answer = gvthread::spawn(|_token| 42).await;
    assert_eq!(answer.ok(), Some(42));
}

#[gvthread::test]
fn sync_body_joins_a_spawned_gvthread() {
    let handle = gvthread::spawn(|_token| gvthread::current_id().is_some());
    assert!(handle.join().expect("the spawned GVThread finished"));
}

#[gvthread::test(workers = 2, max_gvthreads = 1000)]
fn options_are_accepted() {
    let handles: Vec<_> = (0..8).map(|i| gvthread::spawn(move |_token| i * 2)).collect();
    let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 56);
}

#[gvthread::test(workers = 2, low_priority_workers = 1, max_gvthreads = 64, time_slice_ms = 5, forced_preempt = false)]
async fn every_option_together() {
    assert_eq!(gvthread::spawn(|_token| "done").await.ok(), Some("done"));
}

#[gvthread::test]
fn returning_ok_passes() -> Result<(), String> {
    let n: i32 = "42".parse().map_err(|e| format!("not a number: {e}"))?;
    assert_eq!(n, 42);
    Ok(())
}

#[gvthread::test]
async fn async_returning_ok_passes() -> Result<(), Box<dyn std::error::Error>> {
    // Two different error types meet `?` here: the error type must come from the signature.
    let n = gvthread::spawn(|_token| 20).await?;
    let m: i32 = "22".parse()?;
    assert_eq!(n + m, 42);
    Ok(())
}

#[gvthread::test]
fn early_return_leaves_the_body_only() -> Result<(), String> {
    if gvthread::current_id().is_some() {
        return Ok(());
    }
    Err("the body did not run inside a GVThread".to_owned())
}

#[gvthread::test]
#[should_panic(expected = "boom from a GVThread")]
fn panics_reach_the_test_harness() {
    panic!("boom from a GVThread");
}

#[gvthread::test]
#[should_panic(expected = "async boom")]
async fn async_panics_reach_the_test_harness() {
    panic!("async boom");
}

/// Each test builds its own runtime, so a test can run many GVThreads of its own; the counter is
/// shared only to prove that the body ran once.
static BODY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[gvthread::test(workers = 1)]
fn body_runs_exactly_once() {
    assert_eq!(BODY_RUNS.fetch_add(1, Ordering::SeqCst), 0);
}

mod renamed {
    //! `crate = "..."` reaches gvthread through another path.
    use ::gvthread as gv;

    #[gv::test(crate = "gv")]
    async fn crate_option_names_the_path() {
        assert!(gv::current_id().is_some());
        assert_eq!(gv::spawn(|_token| 7).await.ok(), Some(7));
    }

    #[gvthread::test(crate = "self::gv", workers = 1)]
    fn crate_option_accepts_relative_paths() {
        assert!(gv::current_id().is_some());
    }
}

mod hygiene {
    //! The expansion's own locals must not capture, or be captured by, names in the body.
    #![allow(non_upper_case_globals)]

    static runtime: &str = "the user's runtime";
    static future: &str = "the user's future";

    #[gvthread::test]
    fn sync_body_sees_its_own_names() {
        assert_eq!(runtime, "the user's runtime");
        assert_eq!(future, "the user's future");
    }

    #[gvthread::test]
    async fn async_body_sees_its_own_names() {
        assert_eq!(runtime, "the user's runtime");
        assert_eq!(future, "the user's future");
    }
}
