//! Compile-time behaviour of `#[gvthread::main]` and `#[gvthread::test]`, checked with trybuild.
//!
//! `ui/pass` programs must compile and run successfully; `ui/fail` programs must fail to compile
//! with exactly the messages in their `.stderr` files. After changing a message, regenerate those
//! files with `TRYBUILD=overwrite cargo test -p gvthread --test macros_ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
