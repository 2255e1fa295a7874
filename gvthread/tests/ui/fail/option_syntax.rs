#![allow(dead_code)]

#[gvthread::main(workers)]
fn needs_a_value() {}

#[gvthread::main(workers(4))]
fn not_a_list() {}

#[gvthread::main(workers = 4 forced_preempt = false)]
fn missing_comma() {}

fn main() {}
