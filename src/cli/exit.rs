//! How the binary ends: one line for an error (exit 1), and a distinct
//! status for a stopped-but-resumable `search` or `train` (Ctrl-C, SIGTERM,
//! SIGHUP, `control stop`), so scripts can tell it from a finished one (0).

/// Exit status of an interrupted, resumable `search` or `train`.
pub const EXIT_INTERRUPTED: u8 = 3;

/// Returned by a command that checkpointed and stopped before the end; the
/// binary prints the message and exits with [`EXIT_INTERRUPTED`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The error as the one line users see: its chain of causes joined, without
/// the backtrace candle appends to its errors when `RUST_BACKTRACE` is set
/// (the frames start at a line `   0: ...`).
pub fn error_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    let mut kept = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let frame = t
            .split_once(':')
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if frame || t.starts_with("stack backtrace:") {
            break;
        }
        kept.push(line);
    }
    kept.join(" ").trim().to_string()
}
