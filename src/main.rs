//! The `singlora` binary: parses the command line and reports errors in one line with a non-zero exit.

fn main() {
    if let Err(e) = singlora::cli::run(std::env::args_os()) {
        eprintln!("singlora: error: {e}");
        std::process::exit(2);
    }
}
