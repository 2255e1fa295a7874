// A path that does not lead to gvthread: rustc's own error points at the string.
#[gvthread::main(crate = "std")]
fn main() {}
