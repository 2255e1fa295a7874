// tokio's spelling gets a hint.
#[gvthread::main(worker_threads = 4)]
fn main() {}
