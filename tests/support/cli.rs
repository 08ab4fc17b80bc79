//! Running the `esr-ea` binary and reading what it says.

use std::process::{Command, Output};

/// Runs `esr-ea ARGS...` to its end.
pub fn esr_ea(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(args)
        .output()
        .unwrap()
}

/// What the command wrote to stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed with one line on stderr that contains `needle`.
pub fn one_line_error(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
}

/// Stricter than [`one_line_error`]: exit status 1 and the line starts with
/// `error: `.
pub fn error_line(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit status for '{needle}': {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "expected '{needle}': {err}"
    );
}

/// Runs `esr-ea search ARGS...` to its end.
pub fn search(args: &[&str]) -> Output {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    esr_ea(&all)
}

/// Runs `esr-ea search ARGS... --headless` to its end.
pub fn headless_search(args: &[&str]) -> Output {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    all.push("--headless");
    esr_ea(&all)
}

/// What the command wrote to stdout, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
