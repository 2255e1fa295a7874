#[gvthread::main(workers = 2, forced_preempt = true, workers = 3)]
fn main() {}
