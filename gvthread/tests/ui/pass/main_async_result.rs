// `?` in an `async` body takes its error type from the signature.

use std::error::Error;

#[gvthread::main(workers = 1)]
async fn main() -> Result<(), Box<dyn Error>> {
    let n = gvthread::spawn(|_token| 40).await?;
    let m: i32 = "2".parse()?;
    if n + m == 42 {
        return Ok(());
    }
    Err("the arithmetic is broken".into())
}
