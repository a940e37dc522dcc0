//! The `singlora` binary: parses the command line and reports errors in one line with a non-zero exit.

fn main() {
    // Behave like other command-line tools when the reader of stdout goes away (`singlora theory | head`): exit
    // quietly instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Steps allocate their caches afresh: keep freed memory instead of faulting it in again every step.
    singlora::alloc::keep_freed_memory();
    if let Err(e) = singlora::cli::run(std::env::args_os()) {
        eprintln!("singlora: error: {e}");
        std::process::exit(2);
    }
}
