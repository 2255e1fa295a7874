#![allow(dead_code)]

#[gvthread::main(crate = gvthread)]
fn unquoted() {}

#[gvthread::main(crate = "not a path")]
fn not_a_path() {}

fn main() {}
