// Any `Termination` type works as the return type of `main`.

use std::process::{ExitCode, Termination};

#[gvthread::main]
fn main() -> impl Termination {
    ExitCode::SUCCESS
}
