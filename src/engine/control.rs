//! The control path for other processes: JSON command lines appended to
//! `control.jsonl` in the run directory (`esr-ea control` writes them; so can
//! any script: `echo '{"command":"pause"}' >> runs/x/control.jsonl`).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use super::events::{Answer, Command, Event};
use super::Inbox;

/// Appends one command to a run's control file (one `write` of one line, so
/// concurrent writers never interleave).
pub fn send_command(control_file: &Path, command: &Command) -> Result<()> {
    append_line(control_file, serde_json::to_string(command)?)
}

/// Appends `command` with a fresh `ack` token, which the search's
/// [`Event::Answered`] will carry; returns the token.
pub fn ask_command(control_file: &Path, command: &Command) -> Result<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let ack = format!("{}-{nanos}", std::process::id());
    let mut line = serde_json::to_value(command)?;
    line["ack"] = serde_json::Value::String(ack.clone());
    append_line(control_file, line.to_string())?;
    Ok(ack)
}

/// The search's answer to the command sent with `ack`, if `event` is it.
pub fn answer_to(event: &Event, ack: &str) -> Option<Answer> {
    match event {
        Event::Answered {
            ack: answered,
            accepted,
            message,
        } if answered == ack => Some(Answer {
            accepted: *accepted,
            message: message.clone(),
        }),
        _ => None,
    }
}

fn append_line(control_file: &Path, mut line: String) -> Result<()> {
    line.push('\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(control_file)
        .with_context(|| format!("cannot open {}", control_file.display()))?;
    file.write_all(line.as_bytes())
        .with_context(|| format!("cannot write {}", control_file.display()))
}

/// Where this process's next watch of each control file starts reading.
/// One search runs its watches one after another (the search's, then the
/// later stages'); each continues where the last one stopped, so a command
/// written between them, or while the run was starting, is not lost.
static CURSORS: Mutex<BTreeMap<PathBuf, u64>> = Mutex::new(BTreeMap::new());

/// Marks the control file's current end as where this process starts reading
/// it: called when the process takes the run's lock, since `esr-ea control`
/// writes only while a search holds it (so what follows is meant for us, and
/// what came before was meant for an earlier search).
pub fn start_reading_at_end(path: &Path) {
    let end = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    CURSORS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(cursor_key(path), end);
}

/// One key per file however its path was spelt (relative or not).
fn cursor_key(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| d.join(name))
        .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Watches a control file and forwards new command lines to the engine.
/// Reading starts where this process's last watch of it stopped, or at the
/// point marked by [`start_reading_at_end`], else at the file's end: lines
/// written for an earlier search are not replayed.
pub fn watch(
    path: PathBuf,
    inbox: Sender<Inbox>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let key = cursor_key(&path);
    let start = CURSORS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .copied();
    std::thread::Builder::new()
        .name("esr-ea-control".into())
        .spawn(move || {
            let mut offset =
                start.unwrap_or_else(|| std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
            let remember = |offset: u64| {
                CURSORS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), offset);
            };
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
                remember(offset - pending.len() as u64);
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
    let ignored = |e: serde_json::Error| {
        Inbox::Warn(format!(
            "control.jsonl: ignored line '{line}': {e} (expected e.g. {{\"command\":\"pause\"}})"
        ))
    };
    let mut value: serde_json::Value = match serde_json::from_str(line) {
        Ok(value) => value,
        Err(e) => return Some(ignored(e)),
    };
    // A line with an `ack` token wants an answer (`esr-ea control` waits for it).
    let ack = value
        .as_object_mut()
        .and_then(|o| o.remove("ack"))
        .and_then(|a| a.as_str().map(str::to_string));
    Some(match serde_json::from_value::<Command>(value) {
        Ok(command) => match ack {
            Some(ack) => Inbox::Asked { command, ack },
            None => Inbox::Command(command),
        },
        Err(e) => ignored(e),
    })
}
