//! `#[gvthread::main]` expansions that actually run, called from ordinary tests.
//!
//! The attribute also works on functions not named `main`; each call builds a runtime, runs the
//! body as a GVThread and hands back what the body returned.

mod sync_main {
    #[gvthread::main]
    pub fn main() {
        assert!(gvthread::current_id().is_some());
    }
}

mod async_main {
    #[gvthread::main(workers = 2, max_gvthreads = 1000)]
    pub async fn main() -> Result<(), gvthread::JoinError> {
        assert!(gvthread::current_id().is_some());
        assert_eq!(gvthread::spawn(|_token| 42).await?, 42);
        Ok(())
    }
}

mod result_main {
    //! A `Result` from `main` is reported as std reports it: `Error: {err:?}` on stderr and a
    //! failure exit status. The report is made inside the GVThread, so the error type need not be
    //! `Send`; the function therefore returns the `ExitCode`.
    use std::error::Error;

    #[gvthread::main]
    pub fn main() -> Result<(), Box<dyn Error>> {
        let n: i32 = "not a number".parse()?;
        println!("unreachable: {n}");
        Ok(())
    }
}

mod ok_main {
    #[gvthread::main]
    pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
        let n = gvthread::spawn(|_token| 40).await?;
        let m: i32 = "2".parse()?;
        assert_eq!(n + m, 42);
        Ok(())
    }
}

#[test]
fn sync_main_runs_its_body_in_a_gvthread() {
    assert!(gvthread::current_id().is_none());
    sync_main::main();
}

#[test]
fn async_main_awaits_a_join_handle() {
    assert_eq!(async_main::main(), std::process::ExitCode::SUCCESS);
}

#[test]
fn main_reports_its_result_like_std() {
    use std::process::ExitCode;
    assert_eq!(result_main::main(), ExitCode::FAILURE);
    assert_eq!(ok_main::main(), ExitCode::SUCCESS);
}

#[derive(Debug, PartialEq)]
struct Failed(&'static str);

/// Functions not named `main` hand their value back unchanged.
#[gvthread::main]
fn fails() -> Result<(), Failed> {
    Err(Failed("reported by the body"))
}

#[test]
fn other_names_return_the_bodys_result() {
    assert_eq!(fails(), Err(Failed("reported by the body")));
}

#[gvthread::main(workers = 1, forced_preempt = true, time_slice_ms = 10)]
fn answer() -> usize {
    let handles: Vec<_> = (1..=3).map(|i| gvthread::spawn(move |_token| i)).collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>() * 7
}

#[gvthread::main]
async fn async_answer() -> Option<u32> {
    gvthread::spawn(|_token| 42).await.ok()
}

#[test]
fn other_names_return_their_value() {
    assert_eq!(answer(), 42);
    assert_eq!(async_answer(), Some(42));
    assert_eq!(returns_early(), "returned from inside the GVThread");
}

#[gvthread::main]
fn returns_early() -> &'static str {
    if gvthread::current_id().is_some() {
        return "returned from inside the GVThread";
    }
    "the body ran outside a GVThread"
}

#[gvthread::main]
fn panics() {
    panic!("main body panicked");
}

#[test]
fn a_panicking_body_panics_the_caller() {
    let payload = std::panic::catch_unwind(panics).expect_err("the panic reached the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"main body panicked"));
}
