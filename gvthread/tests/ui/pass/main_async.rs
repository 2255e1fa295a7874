// An `async fn main` can await a JoinHandle. It needs no dependency besides gvthread.

#[gvthread::main(workers = 2, forced_preempt = false, max_gvthreads = 100_000)]
async fn main() {
    assert!(gvthread::current_id().is_some());
    assert_eq!(gvthread::spawn(|_token| 42).await.unwrap(), 42);
}
