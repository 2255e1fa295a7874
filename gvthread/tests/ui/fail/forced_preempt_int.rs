#[gvthread::main(forced_preempt = 1)]
fn main() {}
