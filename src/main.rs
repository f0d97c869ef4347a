//! The `syncfabric` command-line tool.

fn main() {
    println!("syncfabric {}", env!("CARGO_PKG_VERSION"));
}
