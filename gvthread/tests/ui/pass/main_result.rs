// `main` may return `Result`, as with std, with `?` on errors of different types. The error type
// `Box<dyn Error>` is not `Send`, yet it works: the result is reported inside the GVThread.

use std::error::Error;

#[gvthread::main]
fn main() -> Result<(), Box<dyn Error>> {
    let n: i32 = "40".parse()?;
    let m = gvthread::spawn(|_token| 2).join()?;
    assert_eq!(n + m, 42);
    Ok(())
}
