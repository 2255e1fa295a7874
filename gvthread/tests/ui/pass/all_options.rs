// Every option at once, with literal forms that rustc accepts: underscores and suffixes.

#[gvthread::main(
    workers = 2,
    low_priority_workers = 1,
    max_gvthreads = 1_000usize,
    time_slice_ms = 5,
    forced_preempt = true,
    crate = "::gvthread"
)]
fn main() {
    assert!(gvthread::current_id().is_some());
}
