//! Attribute macros that start a [gvthread] runtime for you: `#[gvthread::main]` and
//! `#[gvthread::test]`.
//!
//! Use them through the `gvthread` crate, which re-exports both; this crate is an implementation
//! detail and its paths are not meant to be named directly.
//!
//! Each macro rewrites the function it is attached to into one that builds a
//! `gvthread::Runtime` from a `gvthread::SchedulerConfig` and runs the original body as a
//! GVThread with `Runtime::block_on`. An `async fn` body is driven to completion inside that
//! GVThread, so it may `.await` a `gvthread::JoinHandle` or any other future.
//!
//! # Options
//!
#![doc = include_str!("options.md")]
//!
//! # Errors
//!
//! Misuse is a compile error whose span covers the offending tokens: an unknown, duplicated or
//! ill-typed option, an out-of-range value, parameters or generics on the function, or the
//! attribute on something that is not a function. The function is still emitted next to the error
//! so that IDE features keep working on it.
//!
//! [gvthread]: https://docs.rs/gvthread
#![warn(missing_docs)]

mod entry;

use proc_macro::TokenStream;

/// Runs the annotated function's body as a GVThread on a freshly built `gvthread::Runtime`.
///
/// Works on `fn main()` and `async fn main()`, and on functions with other names too (they then
/// build a runtime every time they are called). A panic in the body resumes in the calling
/// thread. The runtime is dropped, and so shut down, when the body has finished.
///
/// # Return values
///
/// `main` may return anything std's `main` may return, such as `Result<(), Box<dyn Error>>`,
/// with the same effect: an `Err` is printed as `Error: {err:?}` and the process exits with a
/// failure status. Because the body runs on a worker thread and the error type need not be
/// `Send`, that report is made inside the GVThread, and the generated `fn main` returns the
/// resulting `std::process::ExitCode`.
///
/// A function with another name keeps its signature, minus `async`, and returns the body's value
/// to its caller; that value must then be `Send + 'static`, as for `Runtime::block_on`.
///
/// # Options
///
#[doc = include_str!("options.md")]
///
/// # Examples
///
/// ```ignore
/// #[gvthread::main]
/// fn main() {
///     let handle = gvthread::spawn(|_token| 6 * 7);
///     assert_eq!(handle.join().unwrap(), 42);
/// }
/// ```
///
/// An `async` body, with a few options and a `Result` return:
///
/// ```ignore
/// #[gvthread::main(workers = 4, forced_preempt = false, max_gvthreads = 100_000)]
/// async fn main() -> Result<(), gvthread::JoinError> {
///     let answer = gvthread::spawn(|_token| 6 * 7).await?;
///     println!("{answer}");
///     Ok(())
/// }
/// ```
///
/// The expansion of the second example is roughly:
///
/// ```ignore
/// fn main() -> std::process::ExitCode {
///     let mut rt = gvthread::Runtime::new(
///         gvthread::SchedulerConfig::default()
///             .num_workers(4)
///             .max_gvthreads(100_000)
///             .enable_forced_preempt(false),
///     );
///     rt.block_on(move || {
///         fn report(value: Result<(), gvthread::JoinError>) -> std::process::ExitCode {
///             std::process::Termination::report(value)
///         }
///         let body = move || -> Result<(), gvthread::JoinError> {
///             gvthread::__private::block_on_future(async move {
///                 let answer = gvthread::spawn(|_token| 6 * 7).await?;
///                 println!("{answer}");
///                 Ok(())
///             })
///         };
///         report(body())
///     })
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Main, args.into(), item.into()).into()
}

/// Turns the annotated function into a `#[test]` whose body runs as a GVThread on its own,
/// freshly built `gvthread::Runtime`.
///
/// The function may be `async`, and may return anything a `#[test]` may return, such as
/// `Result<(), Box<dyn Error>>`; as with [`main`](macro@main), a returned value is reported
/// inside the GVThread, so it need not be `Send`, and the generated test returns the
/// `std::process::ExitCode`.
///
/// Other attributes (`#[should_panic]`, `#[ignore]`, ...) are kept. Do not add a separate
/// `#[test]`: this macro already emits one. Because every test gets its own runtime, tests share
/// no workers and no GVThreads.
///
/// # Options
///
/// The same as for `#[gvthread::main]`:
///
#[doc = include_str!("options.md")]
///
/// # Examples
///
/// ```ignore
/// #[gvthread::test]
/// fn runs_inside_a_gvthread() {
///     assert!(gvthread::current_id().is_some());
/// }
///
/// #[gvthread::test(workers = 2, max_gvthreads = 1000)]
/// async fn awaits_a_join_handle() -> Result<(), gvthread::JoinError> {
///     assert_eq!(gvthread::spawn(|_token| 42).await?, 42);
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Test, args.into(), item.into()).into()
}
