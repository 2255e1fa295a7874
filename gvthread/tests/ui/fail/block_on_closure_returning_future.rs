// An `async` block wrapped in a closure (what rustc suggests for a closure argument) is run as a
// closure: `block_on` hands back the unpolled future, and the compiler says it is unused.
#![deny(unused_must_use)]

fn main() {
    let mut rt = gvthread::Runtime::new(gvthread::SchedulerConfig::default().num_workers(1));
    rt.block_on(|| async { println!("never printed") });
}
