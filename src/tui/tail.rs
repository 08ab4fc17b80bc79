//! Reading a run's `events.jsonl`: all of it (replay), then what is appended
//! (tail), tolerating a partly written last line and a truncated file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::clock::stamp_of;
use crate::engine::Event;

/// How often the tail looks for new lines.
pub const POLL: Duration = Duration::from_millis(200);

/// Follows an append-only JSON-lines event log.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    line: usize,
    pending: Vec<u8>,
}

impl Tail {
    /// A tail that starts at the file's beginning (so history is replayed).
    pub fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
            line: 0,
            pending: Vec::new(),
        }
    }

    /// Polls until an event satisfies `found` (returning what it made of
    /// it) or `timeout` passes (`None`).
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut found: impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(hit) = self.poll().iter().find_map(&mut found) {
                return Some(hit);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The events of the complete lines appended since the last call. A line
    /// that is not an event becomes a warning `Log` event naming the line; a
    /// missing file yields nothing (the search may not have started yet).
    pub fn poll(&mut self) -> Vec<Event> {
        self.poll_stamped().into_iter().map(|(e, _)| e).collect()
    }

    /// [`Tail::poll`], each event with its line's run clock (`"t"`), when
    /// the line has one.
    pub fn poll_stamped(&mut self) -> Vec<(Event, Option<f64>)> {
        let mut events = Vec::new();
        let Ok(mut file) = File::open(&self.path) else {
            return events;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            events.push((
                warn(format!(
                    "{} got shorter: reading it again from the start",
                    self.path.display()
                )),
                None,
            ));
            self.offset = 0;
            self.line = 0;
            self.pending.clear();
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return events;
        }
        let mut chunk = Vec::new();
        if file.read_to_end(&mut chunk).is_err() {
            return events;
        }
        self.offset += chunk.len() as u64;
        self.pending.extend_from_slice(&chunk);
        // One pass over the complete lines, then one drain: draining line by
        // line moved the rest of a replayed log once per line (quadratic:
        // 4 s for a paper-length run's 6 MB).
        let mut start = 0;
        let mut lines = Vec::new();
        while let Some(len) = self.pending[start..].iter().position(|&b| b == b'\n') {
            lines.push(start..start + len + 1);
            start += len + 1;
        }
        for range in lines {
            let raw = &self.pending[range];
            self.line += 1;
            let text = String::from_utf8_lossy(raw);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(text) {
                Ok(event) => events.push((event, stamp_of(text))),
                Err(e) => events.push((
                    warn(format!(
                        "{} line {}: not an event ({e}); skipped",
                        self.path.display(),
                        self.line
                    )),
                    None,
                )),
            }
        }
        self.pending.drain(..start);
        events
    }
}

fn warn(message: String) -> Event {
    Event::Log {
        level: "warn".into(),
        message,
    }
}

/// Every complete event line of a log (for showing a resumed run's history).
pub fn read_event_log(path: &Path) -> Vec<Event> {
    Tail::new(path).poll()
}

/// Follows `path` on a thread, sending events with their stamps until
/// `stop` is set or the receiver is gone.
pub fn spawn_tail(
    path: &Path,
    events: Sender<(Event, Option<f64>)>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let mut tail = Tail::new(path);
    std::thread::Builder::new()
        .name("esr-ea-tail".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for event in tail.poll_stamped() {
                    if events.send(event).is_err() {
                        return;
                    }
                }
                std::thread::sleep(POLL);
            }
        })
        .expect("spawn event log tail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn partial_lines_wait_and_truncation_restarts() {
        let dir = std::env::temp_dir().join(format!("esr-ea-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut tail = Tail::new(&path);
        assert!(tail.poll().is_empty(), "no file yet");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"{\"event\":\"paused\"}\n{\"event\":\"res")
            .unwrap();
        f.flush().unwrap();
        assert_eq!(tail.poll(), vec![Event::Paused]);
        f.write_all(b"umed\"}\nnot json\n").unwrap();
        f.flush().unwrap();
        let events = tail.poll();
        assert_eq!(events[0], Event::Resumed);
        assert!(
            matches!(&events[1], Event::Log { level, message } if level == "warn" && message.contains("line 3")),
            "{events:?}"
        );
        std::fs::write(&path, "{\"event\":\"paused\"}\n").unwrap();
        let events = tail.poll();
        assert!(matches!(&events[0], Event::Log { message, .. } if message.contains("shorter")));
        assert_eq!(events[1], Event::Paused);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
