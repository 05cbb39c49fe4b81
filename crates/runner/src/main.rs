//! The sluice command line (a stub until the runner lands).

fn main() {
    eprintln!("sluice: no commands yet");
    std::process::exit(2);
}
