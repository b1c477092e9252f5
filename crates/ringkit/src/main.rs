//! `ringkit`: the command-line entry point.

fn main() {
    println!("ringkit");
}
