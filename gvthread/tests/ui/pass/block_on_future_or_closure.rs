// `Runtime::block_on` takes a closure (plain blocking code) or a future (as tokio's does), and
// `Handle::block_on` too. Closures keep working exactly as before.

use gvthread::{Runtime, SchedulerConfig};

fn main() {
    let mut rt = Runtime::new(SchedulerConfig::default().num_workers(2));
    let a: u32 = rt.block_on(|| gvthread::spawn(|_token| 20).join().unwrap());
    let b = rt.block_on(async { gvthread::spawn(|_token| 22u32).await.unwrap() });
    let moved = String::from("moved");
    let c = rt.block_on(async move { moved.len() });
    let d = rt.handle().block_on(|| 1);
    rt.block_on(|| ());
    rt.block_on(async {});
    assert_eq!(a + b + c as u32 + d, 48);
}
