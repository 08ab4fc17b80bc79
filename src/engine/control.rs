//! The control path for other processes: JSON command lines appended to
//! `control.jsonl` in the run directory (`esr-ea control` writes them; so can
//! any script: `echo '{"command":"pause"}' >> runs/x/control.jsonl`).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::events::Command;
use super::Inbox;

/// Appends one command to a run's control file (one `write` of one line, so
/// concurrent writers never interleave).
pub fn send_command(control_file: &Path, command: &Command) -> Result<()> {
    let mut line = serde_json::to_string(command)?;
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(control_file)
        .with_context(|| format!("cannot open {}", control_file.display()))?;
    file.write_all(line.as_bytes())
        .with_context(|| format!("cannot write {}", control_file.display()))
}

/// Watches a control file and forwards new command lines to the engine.
/// Lines written before the watch started are not replayed.
pub fn watch(
    path: PathBuf,
    inbox: Sender<Inbox>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("esr-ea-control".into())
        .spawn(move || {
            let mut offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            // Bytes, not text: one bad byte must cost its own line only,
            // never the offset (which would block every later command).
            let mut pending: Vec<u8> = Vec::new();
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                let Ok(mut file) = std::fs::File::open(&path) else {
                    continue;
                };
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if len < offset {
                    // Truncated by someone: start over from its beginning.
                    offset = 0;
                    pending.clear();
                }
                if len == offset || file.seek(SeekFrom::Start(offset)).is_err() {
                    continue;
                }
                let mut chunk = Vec::new();
                if file.read_to_end(&mut chunk).is_err() {
                    continue;
                }
                offset += chunk.len() as u64;
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let raw: Vec<u8> = pending.drain(..=end).collect();
                    let Some(msg) = parse_line(&raw) else {
                        continue;
                    };
                    if inbox.send(msg).is_err() {
                        return;
                    }
                }
            }
        })
        .expect("spawn control watcher")
}

/// One line of the control file as a message: a command, a warning about
/// a line that is not a command, or nothing for a blank line.
fn parse_line(raw: &[u8]) -> Option<Inbox> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Some(Inbox::Warn(format!(
            "control.jsonl: skipped a line that is not UTF-8 text ('{}'); later lines are read",
            String::from_utf8_lossy(raw).trim()
        )));
    };
    let line = text.trim();
    if line.is_empty() {
        return None;
    }
    Some(match serde_json::from_str::<Command>(line) {
        Ok(command) => Inbox::Command(command),
        Err(e) => Inbox::Warn(format!(
            "control.jsonl: ignored line '{line}': {e} (expected e.g. {{\"command\":\"pause\"}})"
        )),
    })
}
