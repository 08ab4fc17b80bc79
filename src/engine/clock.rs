//! The run's clock: one meaning of "elapsed" for the dashboard, `attach`
//! and the headless lines. It counts the wall time the run's processes have
//! spent on it: it starts at 0 when the run starts, and a `--resume` goes
//! on from where the last process left off, so the hours a stopped run sat
//! on disk are not counted. Every line of `events.jsonl` carries it as
//! `"t"` (seconds), so a viewer that attaches later reads the same clock as
//! one that watched from the start.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Bytes read from the end of `events.jsonl` to find the last stamp; a
/// generation's event with every member is far smaller.
const TAIL_BYTES: u64 = 1 << 20;

/// The run's clock in this process: the time earlier processes spent on the
/// run plus the time since this one took it up.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    before: f64,
    since: Instant,
}

impl RunClock {
    /// A clock that already stood at `before` seconds and runs from now.
    pub fn continuing(before: f64) -> RunClock {
        RunClock {
            before: before.max(0.0),
            since: Instant::now(),
        }
    }

    /// Seconds on the run's clock now.
    pub fn now(&self) -> f64 {
        self.before + self.since.elapsed().as_secs_f64()
    }

    /// [`RunClock::now`] as a duration.
    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64(self.now())
    }

    /// The clock of the run in `run_dir` for this process. The search
    /// engine and the pipeline append to the same log through their own
    /// handles, and the front end shows the clock: all of them share one
    /// clock per run directory, taken up at the first call, going on from
    /// the last stamp in the run's `events.jsonl`.
    pub fn of_run(run_dir: &Path) -> RunClock {
        static CLOCKS: OnceLock<Mutex<HashMap<PathBuf, RunClock>>> = OnceLock::new();
        let mut clocks = CLOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *clocks
            .entry(run_dir.to_path_buf())
            .or_insert_with(|| RunClock::continuing(last_stamp(&run_dir.join("events.jsonl"))))
    }
}

/// The `"t"` of the last stamped line of an event log; 0 without one (a
/// new run, or a log written before lines were stamped).
pub fn last_stamp(path: &Path) -> f64 {
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0.0;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(TAIL_BYTES);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut tail).is_err() {
        return 0.0;
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find_map(stamp_of)
        .unwrap_or(0.0)
}

/// The `"t"` of one event line, if it has one. The stamp is the line's last
/// key (see [`RunDir::append_event`](super::RunDir::append_event)), so it is
/// read from the end without parsing the event a second time: a replay of a
/// long run's log stays one parse per line.
pub fn stamp_of(line: &str) -> Option<f64> {
    let line = line.trim_end();
    let body = line.strip_suffix('}')?;
    let at = body.rfind(",\"t\":")?;
    body[at + 5..]
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t >= 0.0)
}
