//! The whole run as stages: the search, then fully training its best
//! architectures, then each benchmark set, then the report. Each stage's
//! progress is in `pipeline.json` ([`PipelineState`]): a finished stage is
//! never redone, an interrupted one continues from its last checkpoint.
//!
//! One thread runs the stages in order; the front end (dashboard, headless
//! printer) reads one event stream for all of them and sends its commands
//! to one inbox, routed to whichever stage runs.

mod bench;
mod fully_train;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{bail, Result};

use super::executor::Executor;
use super::results::{self, files, PipelineState, Stage, StageStatus};
use super::{control, rundir, Answer, Command, EngineSetup, Event, Inbox, RunDir};
use crate::config::{Config, PipelineStep};
use crate::search::Search;

pub use fully_train::finalists;

/// A report writer (`crate::report::write_report`), passed in from above.
pub type ReportFn = Box<dyn Fn(&Path) -> Result<()> + Send>;

/// Where the search stage stands when the pipeline starts.
pub enum SearchStage {
    /// To run (new or resumed) with this engine setup and executor.
    Run(Box<EngineSetup>, Box<dyn Executor>),
    /// Already finished (a resumed run whose search is done).
    Finished(Box<Search>),
}

/// The last stage to run (`--stop-after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAfter {
    /// Only the search.
    Search,
    /// The search and the full training.
    Train,
}

/// What the pipeline needs.
pub struct PipelineSetup {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The run's configuration.
    pub config: Config,
    /// Devices, one full training each at a time.
    pub devices: Vec<String>,
    /// The search.
    pub search: SearchStage,
    /// End after this stage.
    pub stop_after: Option<StopAfter>,
    /// Writes the report into the run directory.
    pub report: ReportFn,
}

/// How the pipeline ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineEnd {
    /// Every stage finished.
    Complete,
    /// Ended as `--stop-after` asked, after this stage.
    StoppedAfter(String),
    /// Stopped (Ctrl-C, `stop`): resumable.
    Interrupted,
}

/// The pipeline's result.
pub struct PipelineOutcome {
    /// How it ended.
    pub end: PipelineEnd,
    /// The search as it stands.
    pub search: Search,
    /// `(export folder, count)` when the search's best were exported in this run.
    pub exported: Option<(PathBuf, usize)>,
    /// The best finalist's weights, when trained.
    pub model: Option<PathBuf>,
    /// The report, when written.
    pub report: Option<PathBuf>,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// A running pipeline.
pub struct PipelineHandle {
    inbox: Sender<Inbox>,
    thread: Option<JoinHandle<Result<PipelineOutcome>>>,
}

impl PipelineHandle {
    /// A sender for commands (dashboard, signal handler).
    pub fn sender(&self) -> Sender<Inbox> {
        self.inbox.clone()
    }

    /// Waits for the pipeline to end.
    pub fn join(mut self) -> Result<PipelineOutcome> {
        match self.thread.take().expect("joined once").join() {
            Ok(result) => result,
            Err(_) => bail!("the pipeline thread panicked"),
        }
    }
}

/// The stages a configuration runs, all pending: `search`, `fully_train`,
/// `benchmark_<Name>`…, then `report`.
pub fn planned_stages(config: &Config) -> PipelineState {
    let stage = |name: String| Stage {
        name,
        status: StageStatus::Pending,
        seconds: 0.0,
    };
    let mut stages: Vec<Stage> = config
        .pipeline
        .iter()
        .map(|s| match s {
            PipelineStep::Nas => stage("search".into()),
            other => stage(other.name()),
        })
        .collect();
    stages.push(stage("report".into()));
    PipelineState { stages }
}

/// `pipeline.json` of a run, or the configuration's stages when it has none yet.
pub fn load_state(run_dir: &Path, config: &Config) -> Result<PipelineState> {
    Ok(results::read_json(&run_dir.join(files::PIPELINE))?
        .unwrap_or_else(|| planned_stages(config)))
}

/// True when every stage in `pipeline.json` is done.
pub fn all_done(state: &PipelineState) -> bool {
    state.stages.iter().all(|s| s.status == StageStatus::Done)
}

/// Starts the pipeline thread; events go to `events`.
pub fn spawn(setup: PipelineSetup, events: Sender<Event>) -> PipelineHandle {
    let (front_tx, front_rx) = mpsc::channel::<Inbox>();
    let thread = std::thread::Builder::new()
        .name("esr-ea-pipeline".into())
        .spawn(move || Pipeline::new(setup, events, front_rx)?.run())
        .expect("spawn pipeline thread");
    PipelineHandle {
        inbox: front_tx,
        thread: Some(thread),
    }
}

/// The stage the front end's commands go to, and whether one was a stop.
struct Router {
    target: Arc<Mutex<Sender<Inbox>>>,
    stop_seen: Arc<AtomicBool>,
}

impl Router {
    /// Forwards every message of `front` to the current target.
    fn start(front: Receiver<Inbox>, first: Sender<Inbox>) -> Router {
        let target = Arc::new(Mutex::new(first));
        let stop_seen = Arc::new(AtomicBool::new(false));
        let (t, s) = (Arc::clone(&target), Arc::clone(&stop_seen));
        std::thread::Builder::new()
            .name("esr-ea-router".into())
            .spawn(move || {
                for msg in front {
                    if matches!(
                        msg,
                        Inbox::Command(Command::Stop)
                            | Inbox::Asked {
                                command: Command::Stop,
                                ..
                            }
                    ) {
                        s.store(true, Ordering::SeqCst);
                    }
                    let _ = t.lock().expect("router lock").send(msg);
                }
            })
            .expect("spawn router thread");
        Router { target, stop_seen }
    }

    fn route_to(&self, sender: Sender<Inbox>) {
        *self.target.lock().expect("router lock") = sender;
    }
}

/// What the stages after the search share.
struct Pipeline {
    run: RunDir,
    run_dir: PathBuf,
    config: Config,
    devices: Vec<String>,
    search: Option<SearchStage>,
    stop_after: Option<StopAfter>,
    report: ReportFn,
    state: PipelineState,
    events: Sender<Event>,
    router: Router,
    inbox_tx: Sender<Inbox>,
    inbox: Receiver<Inbox>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Pipeline {
    fn new(setup: PipelineSetup, events: Sender<Event>, front: Receiver<Inbox>) -> Result<Self> {
        let (inbox_tx, inbox) = mpsc::channel();
        let router = Router::start(front, inbox_tx.clone());
        let state = load_state(&setup.run_dir, &setup.config)?;
        Ok(Pipeline {
            run: RunDir::for_events(&setup.run_dir),
            run_dir: setup.run_dir,
            config: setup.config,
            devices: setup.devices,
            search: Some(setup.search),
            stop_after: setup.stop_after,
            report: setup.report,
            state,
            events,
            router,
            inbox_tx,
            inbox,
            paused: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    fn emit(&mut self, event: Event) {
        if let Err(e) = self.run.append_event(&event) {
            let _ = self.events.send(Event::Log {
                level: "warn".into(),
                message: format!("cannot append to events.jsonl: {e:#}"),
            });
        }
        let _ = self.events.send(event);
    }

    /// The config's image cache, its news logged through the pipeline's
    /// inbox as the workers' events are (into `events.jsonl` and the event
    /// stream when the inbox is next served; the dashboard may be on the
    /// terminal).
    fn data_cache(&self) -> crate::data::DataCache {
        let inbox = Mutex::new(self.inbox_tx.clone());
        crate::train::datasets::reported_cache(self.config.data_cache(), move |message| {
            let inbox = inbox.lock().expect("not poisoned");
            let _ = inbox.send(Inbox::Emit(Event::Log {
                level: "info".into(),
                message,
            }));
        })
    }

    fn log(&mut self, level: &str, message: String) {
        self.emit(Event::Log {
            level: level.into(),
            message,
        });
    }

    fn save_state(&self) -> Result<()> {
        results::write_json(&self.run_dir.join(files::PIPELINE), &self.state)
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        self.state.stages.iter().position(|s| s.name == name)
    }

    fn begin(&mut self, index: usize) -> Result<Instant> {
        self.state.stages[index].status = StageStatus::Running;
        self.save_state()?;
        let event = Event::StageStarted {
            stage: self.state.stages[index].name.clone(),
            index,
            stages: self.state.stages.len(),
        };
        self.emit(event);
        Ok(Instant::now())
    }

    /// Adds the stage's time; marks it done when `done`.
    fn end(&mut self, index: usize, started: Instant, done: bool) -> Result<()> {
        let stage = &mut self.state.stages[index];
        stage.seconds += started.elapsed().as_secs_f64();
        if done {
            stage.status = StageStatus::Done;
        }
        let event = Event::StageDone {
            stage: stage.name.clone(),
            seconds: stage.seconds,
        };
        self.save_state()?;
        if done {
            self.emit(event);
        }
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.router.stop_seen.load(Ordering::SeqCst)
    }

    /// Obeys the front end's commands between stages' units of work.
    fn handle(&mut self, msg: Inbox) {
        match msg {
            Inbox::Command(command) => {
                self.command(command);
            }
            Inbox::Asked { command, ack } => {
                let answer = self.command(command);
                self.emit(answer.event(ack));
            }
            Inbox::Emit(event) => self.emit(event),
            Inbox::Warn(message) => self.log("warn", message),
            Inbox::Step(..) | Inbox::Done { .. } | Inbox::Resubmitted { .. } => {}
        }
    }

    /// After the search only pause, resume and stop apply; the answer is
    /// also the log line.
    fn command(&mut self, command: Command) -> Answer {
        let (level, answer) = match command {
            Command::Pause => {
                if self.paused.swap(true, Ordering::SeqCst) {
                    return Answer::yes("already paused");
                }
                self.emit(Event::Paused);
                (
                    "info",
                    Answer::yes("paused: training waits after its current step"),
                )
            }
            Command::Resume => {
                if !self.paused.swap(false, Ordering::SeqCst) {
                    return Answer::yes("not paused: training goes on");
                }
                self.emit(Event::Resumed);
                return Answer::yes("resumed");
            }
            Command::Stop => {
                if self.stop.swap(true, Ordering::SeqCst) {
                    return Answer::yes("already stopping");
                }
                (
                    "info",
                    Answer::yes("stopping: checkpointing; resume with esr-ea search --resume"),
                )
            }
            other => (
                "warn",
                Answer::no(format!(
                    "{}: the search has finished; now only pause, resume and stop apply",
                    other.verb()
                )),
            ),
        };
        self.log(level, answer.message.clone());
        answer
    }

    /// Handles what arrived, without waiting.
    fn drain(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            self.handle(msg);
        }
    }

    fn run(mut self) -> Result<PipelineOutcome> {
        let (search, exported) = match self.search_stage()? {
            Ok(done) => done,
            Err(unfinished) => {
                return Ok(self.outcome(PipelineEnd::Interrupted, unfinished, None));
            }
        };
        if self.stop_after == Some(StopAfter::Search) {
            return self.stopped_after("search", search, exported);
        }
        // Other processes steer the later stages through control.jsonl too.
        let watching = Arc::new(AtomicBool::new(false));
        let watcher = control::watch(
            self.run.file(rundir::files::CONTROL),
            self.inbox_tx.clone(),
            Arc::clone(&watching),
        );
        self.router.route_to(self.inbox_tx.clone());
        let result = self.later_stages(search, exported);
        watching.store(true, Ordering::SeqCst);
        let _ = watcher.join();
        result
    }

    fn outcome(
        &self,
        end: PipelineEnd,
        search: Search,
        exported: Option<(PathBuf, usize)>,
    ) -> PipelineOutcome {
        let model = results::final_dir(&self.run_dir, 1).join(files::MODEL);
        let report = self.run_dir.join("report.md");
        PipelineOutcome {
            end,
            search,
            exported,
            model: model.is_file().then_some(model),
            report: report.is_file().then_some(report),
            run_dir: self.run_dir.clone(),
        }
    }

    fn done_event(&mut self, complete: bool, stopped_after: Option<&str>) {
        let model = results::final_dir(&self.run_dir, 1).join(files::MODEL);
        let report = self.run_dir.join("report.md");
        self.emit(Event::PipelineDone {
            complete,
            model: model.is_file().then(|| model.display().to_string()),
            report: report.is_file().then(|| report.display().to_string()),
            stopped_after: stopped_after.map(str::to_string),
        });
    }

    fn stopped_after(
        mut self,
        stage: &str,
        search: Search,
        exported: Option<(PathBuf, usize)>,
    ) -> Result<PipelineOutcome> {
        self.log(
            "info",
            format!(
                "--stop-after {stage}: the later stages wait; run them with esr-ea search --resume {}",
                self.run_dir.display()
            ),
        );
        self.done_event(true, Some(stage));
        Ok(self.outcome(PipelineEnd::StoppedAfter(stage.into()), search, exported))
    }

    /// Runs (or skips) the search: `Ok(Ok(..))` when it is finished, with
    /// the export made now; `Ok(Err(search))` when it was stopped.
    #[allow(clippy::type_complexity)]
    fn search_stage(&mut self) -> Result<Result<(Search, Option<(PathBuf, usize)>), Search>> {
        let index = self.stage_index("search").unwrap_or(0);
        let done_before = self.state.stages[index].status == StageStatus::Done;
        let search = match self.search.take().expect("run once") {
            SearchStage::Finished(search) => *search,
            SearchStage::Run(setup, executor) => {
                let started = self.begin(index)?;
                let handle = super::spawn_with(*setup, executor, self.events.clone());
                self.router.route_to(handle.sender());
                let search = handle.join();
                self.router.route_to(self.inbox_tx.clone());
                let search = search?;
                self.end(index, started, false)?;
                search
            }
        };
        if !search.state.finished {
            return Ok(Err(search));
        }
        if search.state.elites.is_empty() {
            bail!(
                "the search finished but no member got a fitness: {} (every reason in the reason column of {})",
                failure_counts(&search.state),
                self.run_dir.join(rundir::files::HISTORY).display()
            );
        }
        let mut exported = None;
        if !done_before {
            let out = self.run_dir.join("export");
            let n = super::export::export_top(
                &search.state,
                &search.problem.space,
                &self.run_dir,
                self.config.policy.num_elitism,
                &out,
            )?;
            self.emit(Event::Exported {
                dir: out.display().to_string(),
                count: n,
            });
            exported = Some((out, n));
            let started = Instant::now();
            self.end(index, started, true)?;
        }
        Ok(Ok((search, exported)))
    }

    fn later_stages(
        mut self,
        search: Search,
        exported: Option<(PathBuf, usize)>,
    ) -> Result<PipelineOutcome> {
        for index in 0..self.state.stages.len() {
            let name = self.state.stages[index].name.clone();
            if name == "search" || self.state.stages[index].status == StageStatus::Done {
                continue;
            }
            if self.stopping() {
                self.done_event(false, None);
                return Ok(self.outcome(PipelineEnd::Interrupted, search, exported));
            }
            let started = self.begin(index)?;
            let finished = if name == "fully_train" {
                self.fully_train(&search)?
            } else if let Some(set) = name.strip_prefix("benchmark_") {
                self.benchmark(set)?
            } else if name == "report" {
                (self.report)(&self.run_dir)?;
                let report = self.run_dir.join("report.md");
                self.log("info", format!("report: {}", report.display()));
                true
            } else {
                bail!("pipeline.json names a stage esr-ea does not know: {name}");
            };
            self.end(index, started, finished)?;
            if !finished {
                self.done_event(false, None);
                return Ok(self.outcome(PipelineEnd::Interrupted, search, exported));
            }
            if name == "fully_train" && self.stop_after == Some(StopAfter::Train) {
                return self.stopped_after("train", search, exported);
            }
        }
        self.done_event(true, None);
        Ok(self.outcome(PipelineEnd::Complete, search, exported))
    }
}

/// What became of the members of a run that trained nothing, e.g.
/// `4 failed (3 over max_latency_ms), 1 killed; the first failure: ...`.
/// Only the kinds that happened are named.
pub fn failure_counts(state: &crate::search::SearchState) -> String {
    use crate::search::Status;
    let reasons: Vec<&str> = state
        .history
        .iter()
        .filter_map(|m| match &m.status {
            Status::Failed { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    let over = reasons
        .iter()
        .filter(|r| r.contains("> max_latency_ms"))
        .count();
    let killed = state
        .history
        .iter()
        .filter(|m| m.status == Status::Killed)
        .count();
    let mut parts = Vec::new();
    if !reasons.is_empty() {
        let latency = if over > 0 {
            format!(" ({over} over max_latency_ms)")
        } else {
            String::new()
        };
        parts.push(format!("{} failed{latency}", reasons.len()));
    }
    if killed > 0 {
        parts.push(format!("{killed} killed"));
    }
    if parts.is_empty() {
        parts.push("none was evaluated".into());
    }
    let first = reasons
        .first()
        .map(|r| format!("; the first failure: {r}"))
        .unwrap_or_default();
    format!("{}{first}", parts.join(", "))
}
