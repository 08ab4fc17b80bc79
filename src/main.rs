//! The `esr-ea` binary: see `esr-ea --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread starts: candle's element-wise ops on the calling
    // thread, convolutions on esr-ea's own pool (see `ops::configure_threads`).
    esr_ea::ops::configure_threads(None);
    // candle attaches a backtrace to its errors whenever RUST_BACKTRACE is
    // set; errors here are one line for users. RUST_LIB_BACKTRACE governs
    // only such error backtraces (panics still honour RUST_BACKTRACE).
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // Like other command-line tools, end quietly when the reader of our output
    // goes away (`esr-ea inspect ... | head`) instead of panicking on EPIPE.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match esr_ea::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<esr_ea::cli::exit::Interrupted>() => {
            eprintln!("{err}");
            ExitCode::from(esr_ea::cli::exit::EXIT_INTERRUPTED)
        }
        Err(err) => {
            // One line: the chain of causes joined, never a backtrace.
            eprintln!("error: {}", esr_ea::cli::exit::error_line(&err));
            ExitCode::FAILURE
        }
    }
}
