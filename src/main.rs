//! The `esr-ea` binary: see `esr-ea --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread starts: candle's element-wise ops on the calling
    // thread, convolutions on esr-ea's own pool (see `ops::configure_threads`).
    esr_ea::ops::configure_threads(None);
    // Like other command-line tools, end quietly when the reader of our output
    // goes away (`esr-ea inspect ... | head`) instead of panicking on EPIPE.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match esr_ea::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the chain of causes joined, never a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
