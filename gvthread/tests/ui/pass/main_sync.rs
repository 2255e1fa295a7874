// The smallest use: the body of `main` runs as a GVThread.

#[gvthread::main]
fn main() {
    assert!(gvthread::current_id().is_some());
    let handle = gvthread::spawn(|_token| 6 * 7);
    assert_eq!(handle.join().unwrap(), 42);
}
