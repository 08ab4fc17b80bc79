//! The files one remote evaluation reads and writes, all in the run
//! directory (on a filesystem the coordinator and the nodes share):
//!
//! * `jobs/<id>.json`: the [`JobSpec`] that `esr-ea evaluate` reads;
//! * `jobs/<id>.progress.jsonl`: one [`ProgressLine`] per training step,
//!   appended by the job and tailed by the coordinator for the live loss curve;
//! * `jobs/<id>.result.json`: the [`Outcome`] (`evaluated`, `failed`, `stopped`, `waiting` or `rejected`), written atomically at the end;
//! * `jobs/<id>.sh`, `jobs/<id>.out`: the batch script and its output (Slurm).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;
use crate::search::{Member, StopCheck};
use crate::train::fitness::{Leg, Outcome};
use crate::train::StepReport;

/// The folder of the job files inside a run directory.
pub const JOBS_DIR: &str = "jobs";

/// What a job trains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A search member's quick training and validation: its fitness.
    #[default]
    Member,
    /// One training of a fidelity study (`esr-ea study`): `member.id` is the
    /// task's place in the study's list of trainings, `run_dir` the study
    /// directory; the job writes the study's record of it.
    StudyTask,
}

/// Everything `esr-ea evaluate` needs to train and validate one member
/// exactly as a local worker would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// What it trains (absent in a search's job files: a member).
    #[serde(default, skip_serializing_if = "is_member")]
    pub kind: JobKind,
    /// The run directory (absolute).
    pub run_dir: PathBuf,
    /// The run's resolved configuration (`config.yaml`).
    pub config: PathBuf,
    /// The member, genes included.
    pub member: Member,
    /// Its training seed ([`crate::engine::member_seed`]).
    pub seed: u64,
    /// Device to train on (`cpu`, `cuda:0`).
    pub device: String,
    /// Where to save the trained weights.
    pub weights: PathBuf,
    /// Where to append progress lines.
    pub progress: PathBuf,
    /// Where to write the result.
    pub result: PathBuf,
    /// The median stopping rule's checks for the member, limits fixed by
    /// the coordinator ([`crate::train::fitness::Job::checks`]); absent when
    /// the rule is off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<StopCheck>,
    /// The part of the training to do under successive halving
    /// ([`crate::train::fitness::Job::leg`]); absent: the whole training.
    #[serde(default, skip_serializing_if = "is_whole")]
    pub leg: Leg,
}

fn is_member(kind: &JobKind) -> bool {
    *kind == JobKind::Member
}

fn is_whole(leg: &Leg) -> bool {
    *leg == Leg::default()
}

/// One training step, a JSON line of the progress file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProgressLine {
    /// Steps done.
    pub step: usize,
    /// Steps planned.
    pub steps: usize,
    /// Training loss of the step.
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
}

impl From<StepReport> for ProgressLine {
    fn from(r: StepReport) -> ProgressLine {
        ProgressLine {
            step: r.step,
            steps: r.steps,
            loss: r.loss,
            lr: r.lr,
        }
    }
}

impl From<ProgressLine> for StepReport {
    fn from(p: ProgressLine) -> StepReport {
        StepReport {
            step: p.step,
            steps: p.steps,
            loss: p.loss,
            lr: p.lr,
        }
    }
}

/// Paths of one member's job files in a run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPaths {
    /// `jobs/<id>.json`.
    pub spec: PathBuf,
    /// `jobs/<id>.progress.jsonl`.
    pub progress: PathBuf,
    /// `jobs/<id>.result.json`.
    pub result: PathBuf,
    /// `jobs/<id>.sh`.
    pub script: PathBuf,
    /// `jobs/<id>.out`: the job's stdout and stderr.
    pub output: PathBuf,
}

impl JobPaths {
    /// The files of member `id` in `run_dir`.
    pub fn new(run_dir: &Path, id: u64) -> JobPaths {
        let dir = run_dir.join(JOBS_DIR);
        JobPaths {
            spec: dir.join(format!("{id}.json")),
            progress: dir.join(format!("{id}.progress.jsonl")),
            result: dir.join(format!("{id}.result.json")),
            script: dir.join(format!("{id}.sh")),
            output: dir.join(format!("{id}.out")),
        }
    }
}

/// Reads a job spec; errors name the file.
pub fn read_spec(path: &Path) -> Result<JobSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an esr-ea job file (written by the Slurm executor)",
            path.display()
        )
    })
}

/// Writes a job spec atomically.
pub fn write_spec(path: &Path, spec: &JobSpec) -> Result<()> {
    let json = serde_json::to_vec_pretty(spec)?;
    atomic_write(path, &json).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a result atomically: a reader sees no file or the whole result.
pub fn write_result(path: &Path, result: &Outcome) -> Result<()> {
    let json = serde_json::to_vec(result)?;
    atomic_write(path, &json).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads a result; `Ok(None)` while the job has not written it.
pub fn read_result(path: &Path) -> Result<Option<Outcome>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a job result", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Follows a progress file: each [`ProgressTail::poll`] returns the lines
/// completed since the last one (a partly written last line waits).
#[derive(Debug)]
pub struct ProgressTail {
    path: PathBuf,
    offset: u64,
    pending: String,
}

impl ProgressTail {
    /// Starts at the file's beginning (it may not exist yet).
    pub fn new(path: PathBuf) -> ProgressTail {
        ProgressTail {
            path,
            offset: 0,
            pending: String::new(),
        }
    }

    /// New complete lines; unreadable lines are skipped (the result file,
    /// not the progress, is what counts).
    pub fn poll(&mut self) -> Vec<ProgressLine> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Rewritten (the job was started again): read it anew.
            self.offset = 0;
            self.pending.clear();
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.pending.push_str(&String::from_utf8_lossy(&bytes));
        let mut out = Vec::new();
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            if let Ok(p) = serde_json::from_str::<ProgressLine>(line.trim()) {
                out.push(p);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_tail_returns_whole_lines_once() {
        let dir = std::env::temp_dir().join(format!("esr-ea-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut tail = ProgressTail::new(path.clone());
        assert!(tail.poll().is_empty(), "no file yet");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(
            f,
            "{{\"step\":1,\"steps\":4,\"loss\":0.5,\"lr\":0.001}}\n{{\"step\":2,"
        )
        .unwrap();
        f.flush().unwrap();
        let got = tail.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].step, 1);
        writeln!(f, "\"steps\":4,\"loss\":0.25,\"lr\":0.001}}").unwrap();
        f.flush().unwrap();
        let got = tail.poll();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].step, got[0].loss), (2, 0.25));
        assert!(tail.poll().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_result_is_none_and_a_written_one_reads_back() {
        let dir = std::env::temp_dir().join(format!("esr-ea-result-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let _ = std::fs::remove_file(&path);
        assert_eq!(read_result(&path).unwrap(), None);
        let r = Outcome::Failed {
            reason: "out of memory".into(),
        };
        write_result(&path, &r).unwrap();
        assert_eq!(read_result(&path).unwrap(), Some(r));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
