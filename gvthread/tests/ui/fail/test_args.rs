#[gvthread::test]
fn takes_an_argument(n: u32) {
    assert_eq!(n, 0);
}

fn main() {}
