// Every value error in one attribute is reported, each at its own value.
const WORKERS: usize = 4;

#[gvthread::main(
    workers = WORKERS,
    low_priority_workers = -1,
    max_gvthreads = 0,
    time_slice_ms = 2.5,
    forced_preempt = "false",
)]
fn main() {}
