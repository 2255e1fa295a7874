// `crate = "..."` reaches gvthread through another name, here a `use` rename.

use gvthread as gvt;

#[gvt::main(crate = "gvt")]
async fn main() {
    assert_eq!(gvt::spawn(|_token| "renamed").await.unwrap(), "renamed");
}
