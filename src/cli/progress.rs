//! Progress output for long work: a redrawn line on a terminal, plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::format::duration;

/// Reports progress of `total` units of work.
pub struct Progress {
    label: String,
    total: usize,
    terminal: bool,
    start: Instant,
    last_plain: Option<Instant>,
}

impl Progress {
    /// Starts reporting on stderr.
    pub fn new(label: &str, total: usize) -> Progress {
        Progress {
            label: label.to_string(),
            total: total.max(1),
            terminal: std::io::stderr().is_terminal(),
            start: Instant::now(),
            last_plain: None,
        }
    }

    /// The line for `done` units with a free-form detail.
    pub fn line(&self, done: usize, detail: &str) -> String {
        let frac = done as f64 / self.total as f64;
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = if done > 0 {
            duration(elapsed / frac - elapsed)
        } else {
            "-".into()
        };
        let width = 24;
        let filled = ((frac * width as f64).round() as usize).min(width);
        format!(
            "{} [{}{}] {done}/{} {detail}  elapsed {} ETA {eta}",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.total,
            duration(elapsed)
        )
    }

    /// Shows progress: redraws on a terminal; on a pipe, at most one line every 5 s.
    pub fn update(&mut self, done: usize, detail: &str) {
        let line = self.line(done, detail);
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        } else if done == self.total
            || self
                .last_plain
                .is_none_or(|t| t.elapsed().as_secs_f64() >= 5.0)
        {
            self.last_plain = Some(Instant::now());
            let _ = writeln!(err, "{line}");
        }
    }

    /// Ends the progress display.
    pub fn finish(&mut self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_bar_and_counts() {
        let p = Progress::new("train", 40);
        let line = p.line(10, "loss 0.05");
        assert!(
            line.contains("[######------------------] 10/40 loss 0.05"),
            "{line}"
        );
    }
}
