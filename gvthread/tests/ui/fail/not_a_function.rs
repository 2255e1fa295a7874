#[gvthread::main]
struct Config {
    workers: usize,
}

#[gvthread::test]
mod tests {}

fn main() {}
