//! The run directory: everything a search writes, and reads back to resume.
//!
//! `state.json` is the truth; `history.csv`, `arch.txt` and `arch_child.txt`
//! are regenerated from it after every evaluation (atomically, like the
//! state), so they can never disagree with it, even after `kill -9`.
//! `events.jsonl` is an append-only log for viewers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::events::Event;
use crate::config::Config;
use crate::fsutil::atomic_write;
use crate::search::{Member, Problem, SearchState, Status};

/// A search's folder (`runs/<name>/`).
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    events: Option<File>,
}

/// File names inside a run directory.
pub mod files {
    /// The resolved configuration.
    pub const CONFIG: &str = "config.yaml";
    /// Everything needed to resume.
    pub const STATE: &str = "state.json";
    /// Append-only event log.
    pub const EVENTS: &str = "events.jsonl";
    /// One row per evaluated individual.
    pub const HISTORY: &str = "history.csv";
    /// Per generation: the elites (reference's output).
    pub const ARCH: &str = "arch.txt";
    /// Per generation: every individual (reference's output).
    pub const ARCH_CHILD: &str = "arch_child.txt";
    /// Commands from other processes, one JSON object a line.
    pub const CONTROL: &str = "control.jsonl";
    /// Quick-trained weights, `models/<id>.safetensors`.
    pub const MODELS: &str = "models";
}

/// The resolved configuration of the run in `run_dir` (its `config.yaml`;
/// relative paths in it are read from `run_dir`). Needs no `state.json`, so a
/// viewer can read a run that has not checkpointed yet.
pub fn load_config(run_dir: &Path) -> Result<Config> {
    let path = run_dir.join(files::CONFIG);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Config::from_yaml_str(&text, run_dir, path.display().to_string())?.config)
}

/// The search problem of the run in `run_dir`, from its `config.yaml`: what
/// a viewer (`attach`) or `control` checks commands against.
pub fn problem_of_run(run_dir: &Path) -> Result<Problem> {
    load_config(run_dir)?.problem().with_context(|| {
        format!(
            "{}: the search constraints",
            run_dir.join(files::CONFIG).display()
        )
    })
}

/// Where a member's quick-trained weights lie in the run directory `run_dir`.
pub fn model_file(run_dir: &Path, id: u64) -> PathBuf {
    run_dir
        .join(files::MODELS)
        .join(format!("{id}.safetensors"))
}

impl RunDir {
    /// Creates a new run directory; refuses one that already holds a search.
    pub fn create(path: &Path) -> Result<RunDir> {
        if path.join(files::STATE).exists() {
            bail!(
                "{} already holds a search (state.json): resume it with --resume {}, or choose another --run-dir",
                path.display(),
                path.display()
            );
        }
        std::fs::create_dir_all(path.join(files::MODELS))
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            events: None,
        })
    }

    /// Opens an existing run directory for resuming or reading.
    pub fn open(path: &Path) -> Result<RunDir> {
        if !path.is_dir() {
            bail!("{} is not a run directory (no such folder)", path.display());
        }
        if !path.join(files::STATE).is_file() {
            bail!(
                "{} is not a run directory: it has no {}",
                path.display(),
                files::STATE
            );
        }
        std::fs::create_dir_all(path.join(files::MODELS))
            .with_context(|| format!("cannot write to run directory {}", path.display()))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            events: None,
        })
    }

    /// A handle on a run directory that only appends events (the pipeline's
    /// later stages, beside the search engine's own handle).
    pub fn for_events(path: &Path) -> RunDir {
        RunDir {
            path: path.to_path_buf(),
            events: None,
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run's name: the folder's name.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// A file inside the run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Where a member's quick-trained weights go.
    pub fn model_path(&self, id: u64) -> PathBuf {
        model_file(&self.path, id)
    }

    /// Where successive halving saves member `id`'s training at checkpoint
    /// `rung` (a folder, [`crate::train::Trainer::save_checkpoint`]): one per
    /// checkpoint, so a kill while one is written never spoils the one before.
    pub fn halving_checkpoint(&self, id: u64, rung: usize) -> PathBuf {
        self.path
            .join(files::MODELS)
            .join(format!("{id}.halving{rung}"))
    }

    /// Writes the resolved configuration.
    pub fn write_config(&self, config: &Config) -> Result<()> {
        let yaml = config.to_yaml();
        let path = self.file(files::CONFIG);
        atomic_write(&path, yaml.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads the resolved configuration back.
    pub fn load_config(&self) -> Result<Config> {
        load_config(&self.path)
    }

    /// Loads the saved search state; a corrupt or truncated file is an error
    /// that says so (never a silent restart).
    pub fn load_state(&self) -> Result<SearchState> {
        let path = self.file(files::STATE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if text.trim().is_empty() {
            bail!(
                "{} is empty: the run's state is lost; start a new run",
                path.display()
            );
        }
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is corrupt or truncated ({e}); it was not modified. Restore it or start a new run",
                path.display()
            )
        })
    }

    /// Saves the state and regenerates the files derived from it.
    pub fn save_state(&self, state: &SearchState) -> Result<()> {
        let path = self.file(files::STATE);
        let json = serde_json::to_vec(state)?;
        atomic_write(&path, &json).with_context(|| format!("cannot write {}", path.display()))?;
        for (name, text) in [
            (files::HISTORY, history_csv(state)),
            (files::ARCH, arch_txt(state, false)),
            (files::ARCH_CHILD, arch_txt(state, true)),
        ] {
            let path = self.file(name);
            atomic_write(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }

    /// Removes temporary files left by writers killed mid-write
    /// (`.state.json.tmp<pid>`, `models/.<id>.safetensors.tmp<pid>`, ...).
    /// Call only while holding the run's lock: then no live writer owns them.
    /// Returns how many were removed.
    pub fn remove_stale_temp_files(&self) -> usize {
        let mut removed = 0;
        for dir in [self.path.clone(), self.path.join(files::MODELS)] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_temp = name.starts_with('.')
                    && name
                        .rsplit_once(".tmp")
                        .is_some_and(|(_, pid)| pid.chars().all(|c| c.is_ascii_digit()));
                if is_temp
                    && entry.file_type().is_ok_and(|t| t.is_file())
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Appends one event to `events.jsonl`, stamped with the run's clock
    /// (`"t"`, seconds; see [`RunClock`](super::clock::RunClock)).
    pub fn append_event(&mut self, event: &Event) -> Result<()> {
        if self.events.is_none() {
            let path = self.file(files::EVENTS);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            end_torn_line(&path, &file)
                .with_context(|| format!("cannot repair {}", path.display()))?;
            self.events = Some(file);
        }
        let mut line = serde_json::to_string(event)?;
        // Readers of the event itself ignore the extra key.
        let t = super::clock::RunClock::of_run(&self.path).now();
        line.pop();
        line.push_str(&format!(",\"t\":{t:.3}}}\n"));
        let file = self.events.as_mut().expect("opened above");
        file.write_all(line.as_bytes())?;
        file.flush()?;
        Ok(())
    }
}

/// A line torn by a crash or a full disk would glue onto the next event and
/// spoil both: end it, so the torn one alone is skipped by readers.
fn end_torn_line(path: &Path, mut file: &File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut reader = File::open(path)?;
    reader.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    reader.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

fn outcome(m: &Member) -> (String, String, String) {
    match &m.status {
        Status::Evaluated(e) | Status::Cached(e) => (
            format!("{:.4}", e.psnr),
            format!("{:.5}", e.ssim),
            format!("{:.1}", e.seconds),
        ),
        Status::Stopped(s) => (String::new(), String::new(), format!("{:.1}", s.seconds)),
        _ => (String::new(), String::new(), String::new()),
    }
}

fn origin_name(m: &Member) -> &'static str {
    use crate::search::Origin;
    match m.origin {
        Origin::Initial => "initial",
        Origin::Mutation { .. } => "mutation",
        Origin::Crossover { .. } => "crossover",
        Origin::Injected => "injected",
        Origin::HandMutated { .. } => "hand_mutated",
    }
}

/// `history.csv`: one row per evaluated (or failed/killed/cached/stopped)
/// individual. A `latency_ms` column is added when latencies were measured
/// (the run has `range.max_latency_ms`), and a `stopped_at` column (steps
/// trained, of how many) once the median stopping rule stopped a member, and
/// a `reason` column once a member failed (why, as the search was told), so
/// files of other runs keep their columns; the last column,
/// `psnr_over_bicubic`, is the fitness minus the bicubic PSNR of the same
/// validation images (empty without a fitness or a known bicubic).
/// Generations count from 1, as the dashboard and the headless lines say
/// them (`state.json` keeps the search's own 0-based count).
pub fn history_csv(state: &SearchState) -> String {
    let with_latency = !state.latency.is_empty();
    let with_stops = state
        .history
        .iter()
        .any(|m| matches!(m.status, Status::Stopped(_)));
    let with_reasons = state
        .history
        .iter()
        .any(|m| matches!(m.status, Status::Failed { .. }));
    let mut out = String::from(
        "generation,id,genes,blocks,params,multi_adds,state,psnr,ssim,seconds,origin,hand_made",
    );
    out.push_str(if with_latency { ",latency_ms" } else { "" });
    out.push_str(if with_stops { ",stopped_at" } else { "" });
    out.push_str(if with_reasons { ",reason" } else { "" });
    out.push_str(",psnr_over_bicubic\n");
    for m in &state.history {
        let (psnr, ssim, secs) = outcome(m);
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            m.generation + 1,
            m.id,
            m.genes,
            m.genes.len(),
            m.params,
            m.multi_adds,
            m.status.name(),
            psnr,
            ssim,
            secs,
            origin_name(m),
            m.origin.is_hand_made()
        ));
        out.pop();
        if with_latency {
            let ms = state.latency.get(&m.key());
            out.push_str(&format!(
                ",{}",
                ms.map(|v| format!("{v:.1}")).unwrap_or_default()
            ));
        }
        if with_stops {
            let at = match &m.status {
                Status::Stopped(s) => format!("{}/{}", s.step, s.steps),
                _ => String::new(),
            };
            out.push_str(&format!(",{at}"));
        }
        if with_reasons {
            let why = match &m.status {
                Status::Failed { reason } => crate::format::csv_field(&reason.replace('\n', " ")),
                _ => String::new(),
            };
            out.push_str(&format!(",{why}"));
        }
        let over = m.fitness().zip(state.bicubic_psnr).map(|(f, b)| f - b);
        out.push_str(&format!(
            ",{}\n",
            over.map(|v| format!("{v:.4}")).unwrap_or_default()
        ));
    }
    out
}

/// The reference's `arch.txt` (elites) or `arch_child.txt` (all individuals),
/// one block per generation: fitness, params, flops (2 x Multi-Adds), genes.
/// With a known bicubic PSNR, a first `#` line names it and each fitness
/// line ends in a `# +0.45 dB vs bicubic` comment (Python's parser, which
/// reads the reference's list form, skips comments). Neither the spec nor
/// the seed page fixes the `generation N` lines, so they count from 1 like
/// every other place a person reads a generation.
pub fn arch_txt(state: &SearchState, children: bool) -> String {
    let mut out = String::new();
    if let Some(b) = state.bicubic_psnr {
        out.push_str(&format!(
            "# fitness: validation PSNR (dB) after quick training; bicubic on the same images: {b:.4} dB\n"
        ));
    }
    let line = |m: &Member| {
        let over = match (m.fitness(), state.bicubic_psnr) {
            (Some(f), Some(b)) => format!("  # {}", crate::format::vs_bicubic(f, b)),
            _ => String::new(),
        };
        format!(
            "fitness: {}, params: {}, flops: {}, arch: {}{over}\n",
            m.fitness()
                .map(|f| format!("{f:.4}"))
                .unwrap_or_else(|| m.status.name().into()),
            m.params,
            2 * m.multi_adds,
            m.genes.to_python_list()
        )
    };
    for summary in &state.summaries {
        out.push_str(&format!("generation {}\n", summary.generation + 1));
        if children {
            for m in state
                .history
                .iter()
                .filter(|m| m.generation == summary.generation)
            {
                out.push_str(&line(m));
            }
        } else {
            for m in &summary.elites {
                out.push_str(&line(m));
            }
        }
    }
    out
}
