#![allow(dead_code)]

#[gvthread::main]
fn generic<T: Send + 'static>() {}

#[gvthread::main]
const fn constant() {}

#[gvthread::main]
unsafe fn not_safe() {}

#[gvthread::main]
fn with_args(a: u8, b: u8) -> u8 {
    a + b
}

fn main() {}
