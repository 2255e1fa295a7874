//! Evidence from a hung test, before it is killed: every thread's stack
//! from `gdb` (when it is installed), written past the test harness's
//! output capture so that it reaches the CI log. Shared by the integration
//! tests of both crates (`#[path]` from gvthread-futures).

use std::io::Write;

/// Prints `what` and, if `gdb` is on the `PATH`, the stack of every thread
/// of process `pid` (this test process or an isolated child), to the real
/// standard error. Takes a few seconds; never fails.
pub fn report_hang(pid: u32, what: &str) {
    let _ = writeln!(std::io::stderr(), "{what}");
    let pid = pid.to_string();
    let status = std::process::Command::new("gdb")
        .args(["-p", &pid, "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt 40"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status();
    if status.is_err() {
        let _ = writeln!(std::io::stderr(), "(no gdb: no thread stacks)");
    }
}
