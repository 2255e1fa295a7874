//! The `select!` macro: parses its arms into a list, then expands to arm
//! values on the stack, one call of the select protocol, and a dispatch on
//! the arm that completed (no allocation).

/// Waits on several channel operations at once and runs the arm of the one
/// that completes, like Go's `select` (in crossbeam-channel's syntax).
///
/// Arms, in any order and number:
///
/// * `recv(rx) -> msg => body`: `msg` is `Result<T, RecvError>` (`Err`
///   once the channel is empty and every sender is gone);
/// * `send(tx, value) -> res => body`: `res` is `Result<(), SendError<T>>`
///   (the value back once every receiver is gone);
/// * `cancelled(token) => body`: the [`CancellationToken`] was cancelled;
/// * at most one `default => body` (run if no operation is ready right now)
///   or `default(timeout) => body` (run if none completes within the
///   `Duration`).
///
/// Behaviour, as in Go:
///
/// * every operand (receivers, senders, values, tokens, the timeout) is
///   evaluated once, in order, before waiting;
/// * when several operations are ready, one is chosen at random (no arm
///   starves);
/// * otherwise the caller waits on all of them at once (a GVThread parks,
///   its worker runs others; an OS thread parks) and exactly one completes.
///   A `send` arm that loses keeps its value (it is dropped with the
///   `select!`); a `recv` arm that loses takes nothing, so no message is lost.
///
/// The patterns after `->` must be irrefutable (usually a name). `select!` is
/// an expression: its value is the value of the body that ran. For a
/// run-time list of operations use [`Select`](crate::Select).
///
/// ```
/// use std::time::Duration;
/// use gvthread::{CancellationToken, Runtime, SchedulerConfig};
///
/// let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
/// rt.block_on(|| {
///     let (tx1, rx1) = gvthread::channel::<u32>(1);
///     let (tx2, rx2) = gvthread::channel::<&str>(1);
///     gvthread::spawn(move |_| tx2.send("two").unwrap());
///
///     let got = gvthread::select! {
///         recv(rx1) -> msg => format!("rx1: {msg:?}"),
///         recv(rx2) -> msg => format!("rx2: {}", msg.unwrap()),
///     };
///     assert_eq!(got, "rx2: two");
///
///     // Non-blocking: nothing is ready, so `default` runs.
///     let ready = gvthread::select! {
///         recv(rx1) -> _ => true,
///         default => false,
///     };
///     assert!(!ready);
///
///     // A send, a cancellation and a timeout.
///     let token = CancellationToken::new();
///     token.cancel();
///     let which = gvthread::select! {
///         send(tx1, 7) -> res => { res.unwrap(); "sent" }
///         cancelled(token) => "cancelled",
///         default(Duration::from_millis(10)) => "timeout",
///     };
///     assert!(which == "sent" || which == "cancelled");
/// });
/// ```
///
/// [`CancellationToken`]: crate::CancellationToken
#[macro_export]
macro_rules! select {
    // ---- parsing: @parse [arms so far] (default so far) rest ----
    (@parse [$($arms:tt)*] ($($def:tt)*)) => {
        $crate::select!(@expand [$($arms)*] ($($def)*))
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) , $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)*] ($($def)*) $($rest)*)
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) recv($r:expr) -> $p:pat => { $($body:tt)* } $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (recv __arm __op ($r) ($p) ({ $($body)* }))] ($($def)*) $($rest)*)
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) recv($r:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($arms)* (recv __arm __op ($r) ($p) ({ $body }))] ($($def)*) $($($rest)*)?)
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) send($s:expr, $v:expr) -> $p:pat => { $($body:tt)* } $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (send __arm __op ($s, $v) ($p) ({ $($body)* }))] ($($def)*) $($rest)*)
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) send($s:expr, $v:expr) -> $p:pat => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($arms)* (send __arm __op ($s, $v) ($p) ({ $body }))] ($($def)*) $($($rest)*)?)
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) cancelled($t:expr) => { $($body:tt)* } $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* (cancelled __arm __op ($t) (_) ({ $($body)* }))] ($($def)*) $($rest)*)
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) cancelled($t:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($arms)* (cancelled __arm __op ($t) (_) ({ $body }))] ($($def)*) $($($rest)*)?)
    };
    (@parse [$($arms:tt)*] () default => { $($body:tt)* } $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)*] (($crate::__private::SelectMode::NonBlocking) ({ $($body)* })) $($rest)*)
    };
    (@parse [$($arms:tt)*] () default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($arms)*] (($crate::__private::SelectMode::NonBlocking) ({ $body })) $($($rest)*)?)
    };
    (@parse [$($arms:tt)*] () default($d:expr) => { $($body:tt)* } $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)*] (($crate::__private::SelectMode::timeout($d)) ({ $($body)* })) $($rest)*)
    };
    (@parse [$($arms:tt)*] () default($d:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::select!(@parse [$($arms)*] (($crate::__private::SelectMode::timeout($d)) ({ $body })) $($($rest)*)?)
    };
    (@parse [$($arms:tt)*] ($($def:tt)+) default $($rest:tt)*) => {
        ::core::compile_error!("select!: at most one `default` arm")
    };
    (@parse [$($arms:tt)*] ($($def:tt)*) $($rest:tt)+) => {
        ::core::compile_error!(
            "select!: expected `recv(r) -> pat => body`, `send(s, v) -> pat => body`, \
             `cancelled(token) => body`, `default => body` or `default(timeout) => body`"
        )
    };

    // ---- one arm's value: @init kind arm operand-binding (operands) ----
    (@init recv $a:ident $h:ident ($r:expr)) => {
        let $h = &$r;
        let mut $a = $crate::__private::RecvArm::new($h);
    };
    (@init send $a:ident $h:ident ($s:expr, $v:expr)) => {
        let $h = &$s;
        let mut $a = $crate::__private::SendArm::new($h, $v);
    };
    (@init cancelled $a:ident $h:ident ($t:expr)) => {
        let $h = &$t;
        let mut $a = $crate::__private::CancelArm::new($h);
    };

    // ---- expansion ----
    (@expand [$(($kind:ident $a:ident $h:ident ($($args:tt)*) ($p:pat) ($body:block)))*] ()) => {
        $crate::select!(@run [$(($kind $a $h ($($args)*) ($p) ($body)))*]
            ($crate::__private::SelectMode::Block) ({ ::core::unreachable!("a blocking select completes an arm") }))
    };
    (@expand [$($arms:tt)*] (($mode:expr) ($def:block))) => {
        $crate::select!(@run [$($arms)*] ($mode) ($def))
    };
    (@run [$(($kind:ident $a:ident $h:ident ($($args:tt)*) ($p:pat) ($body:block)))*] ($mode:expr) ($def:block)) => {{
        $( $crate::select!(@init $kind $a $h ($($args)*)); )*
        let __mode = $mode;
        let _ = $crate::__private::select_run(
            &mut [$( &mut $a as &mut dyn $crate::__private::SelectArm ),*],
            __mode,
        );
        $( if let ::core::option::Option::Some($p) = $a.take_result() $body else )* $def
    }};

    // ---- entry ----
    ($($tokens:tt)*) => {
        $crate::select!(@parse [] () $($tokens)*)
    };
}
