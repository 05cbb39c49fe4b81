//! Project automation (a stub until the tasks land).

fn main() {
    eprintln!("xtask: no tasks yet");
    std::process::exit(2);
}
