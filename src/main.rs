//! The `esr-ea` binary: see `esr-ea --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match esr_ea::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the chain of causes joined, never a backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
