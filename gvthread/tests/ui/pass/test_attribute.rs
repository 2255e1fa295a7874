// `#[gvthread::test]` keeps other attributes and accepts the same options. Outside `cargo test`
// the generated `#[test]` functions are compiled out, as usual.

#[gvthread::test(workers = 2)]
async fn awaits() -> Result<(), gvthread::JoinError> {
    assert_eq!(gvthread::spawn(|_token| 1).await?, 1);
    Ok(())
}

#[gvthread::test]
#[should_panic(expected = "boom")]
fn panics() {
    panic!("boom");
}

fn main() {}
