//! The dashboard's state: what the engine reported (built only from
//! [`Event`]s) plus UI state (selection, focus, overlays, typed input).
//! Key handling is a pure function of this state returning an [`Action`], so
//! it is tested without a terminal.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::look::{Look, Tone};
use super::validate::check_genes;
use crate::engine::{Command, Event};
use crate::search::{Member, Problem, Status};

/// Log lines kept for the log pane.
pub const LOG_LINES: usize = 200;
/// Loss points kept per member; longer curves are thinned (every other point).
pub const CURVE_POINTS: usize = 1000;
/// Longest gene list text accepted in the inject prompt.
const MAX_INPUT: usize = 2000;

/// Where the search runs, which decides what quitting means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The engine lives in this process: leaving means stopping it (resumable).
    InProcess,
    /// Watching a search of another process: leaving may keep it running.
    Attached,
}

/// What a key press asks the event loop to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a command to the engine.
    Send(Command),
    /// Leave the dashboard; with `stop_search` the engine is told to
    /// checkpoint and stop first.
    Quit {
        /// Tell the engine to stop (it checkpoints; the run stays resumable).
        stop_search: bool,
    },
    /// Leave an attached dashboard; the search keeps running.
    Detach,
}

/// The pane that has the focus (arrow keys move its selection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// The current generation's members.
    Population,
    /// The best members so far.
    Elites,
    /// Warnings, errors and hand actions.
    Log,
}

/// A text prompt's content and its validation feedback.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Input {
    /// What was typed.
    pub text: String,
    /// Why the last Enter was refused, if it was.
    pub error: Option<String>,
}

/// A window drawn over the panes; it takes every key until closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The key list.
    Help,
    /// Everything about the selected member.
    Detail,
    /// "Kill member `id`?"
    ConfirmKill {
        /// The member to kill.
        id: u64,
    },
    /// "Stop the search?"
    ConfirmQuit,
    /// Typing a gene list to add to the generation.
    Inject(Input),
    /// Typing how many of the best to export.
    Export(Input),
}

/// The run as announced by `RunStarted` (or the problem, before that).
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Run name.
    pub run: String,
    /// Training devices.
    pub devices: Vec<String>,
    /// Generations in total.
    pub generations: usize,
    /// Individuals per generation.
    pub individuals: usize,
    /// Budget, inclusive.
    pub min_params: u64,
    /// Budget, inclusive.
    pub max_params: u64,
    /// True when the run continues a saved state.
    pub resumed: bool,
}

/// Live training data of one member.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Live {
    /// Device it trains on.
    pub device: String,
    /// Steps done.
    pub step: usize,
    /// Steps planned.
    pub steps: usize,
    /// Last learning rate.
    pub lr: Option<f64>,
    /// Last training loss.
    pub loss: Option<f64>,
    /// True between `Started` and the member's end.
    pub training: bool,
    /// (step, loss) points for the loss chart.
    pub curve: Vec<(f64, f64)>,
    /// The Slurm job it runs as: (job id, state), with the Slurm executor.
    pub job: Option<(String, String)>,
}

/// One line of the log pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `info`, `warn`, `error`, or `you` for hand actions.
    pub level: String,
    /// The text.
    pub text: String,
}

/// Where the search stands, for the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// No `RunStarted` yet.
    Starting,
    /// Training.
    Running,
    /// No new training starts.
    Paused,
    /// Told to stop; waiting for the checkpoint.
    Stopping,
    /// Every generation done.
    Finished,
    /// Stopped early (resumable).
    Stopped,
    /// The event stream ended without a `Finished` event.
    Gone,
}

/// The dashboard's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// The search's fixed part: space and budget (for inject validation, block costs).
    pub problem: Problem,
    /// In-process or attached.
    pub mode: Mode,
    /// Colours and glyphs.
    pub look: Look,
    /// Run description.
    pub run: RunInfo,
    /// Current generation (0-based).
    pub generation: usize,
    /// Current generation's members, in engine order.
    pub population: Vec<Member>,
    /// Live training data by member id.
    pub live: HashMap<u64, Live>,
    /// Elites, best first.
    pub elites: Vec<Member>,
    /// Best member seen so far.
    pub best: Option<Member>,
    /// Best and mean PSNR by completed generation.
    pub summaries: BTreeMap<usize, (Option<f64>, Option<f64>)>,
    /// Recent log lines, oldest first.
    pub log: VecDeque<LogLine>,
    /// Cache hits reported at the end.
    pub cache_hits: Option<u64>,
    /// Time since the dashboard started (set by [`App::tick`]).
    pub clock: Duration,
    /// A one-line reply to the last key (shown in the footer).
    pub flash: Option<String>,
    /// The focused pane.
    pub focus: Pane,
    /// Selected row of the population table.
    pub pop_selected: usize,
    /// Selected row of the elites table.
    pub elite_selected: usize,
    /// Lines scrolled up from the log's end (0 follows new lines).
    pub log_scroll: usize,
    /// The open overlay.
    pub overlay: Option<Overlay>,
    /// The run directory, when known: named in the quit and export prompts
    /// instead of a placeholder.
    pub run_dir: Option<PathBuf>,
    /// How many architectures this dashboard asked to export, until the
    /// engine answers (other viewers' exports and replayed ones only log).
    export_asked: Option<usize>,
    state: RunState,
    paused: bool,
    stop_requested: bool,
    trained_seconds: f64,
    trained_count: usize,
}

impl App {
    /// A dashboard for a search of `problem`, before any event.
    pub fn new(problem: Problem, mode: Mode) -> App {
        let run = RunInfo {
            run: String::new(),
            devices: Vec::new(),
            generations: problem.policy.num_generation,
            individuals: problem.policy.num_individual,
            min_params: problem.range.min_params,
            max_params: problem.range.max_params,
            resumed: false,
        };
        App {
            problem,
            mode,
            look: Look::from_env(),
            run,
            generation: 0,
            population: Vec::new(),
            live: HashMap::new(),
            elites: Vec::new(),
            best: None,
            summaries: BTreeMap::new(),
            log: VecDeque::new(),
            cache_hits: None,
            clock: Duration::ZERO,
            flash: None,
            focus: Pane::Population,
            pop_selected: 0,
            elite_selected: 0,
            log_scroll: 0,
            overlay: None,
            run_dir: None,
            export_asked: None,
            state: RunState::Starting,
            paused: false,
            stop_requested: false,
            trained_seconds: 0.0,
            trained_count: 0,
        }
    }

    /// The same dashboard with other colours/glyphs (tests, `NO_COLOR`).
    pub fn with_look(mut self, look: Look) -> App {
        self.look = look;
        self
    }

    /// The same dashboard, told where the run directory is.
    pub fn with_run_dir(mut self, dir: impl Into<PathBuf>) -> App {
        self.run_dir = Some(dir.into());
        self
    }

    /// The run directory as the user should type it (a placeholder when unknown).
    pub fn run_dir_text(&self) -> String {
        self.run_dir
            .as_deref()
            .map(Path::display)
            .map(|d| d.to_string())
            .unwrap_or_else(|| "<run dir>".into())
    }

    /// True while paused but a training that started before still runs.
    pub fn pausing(&self) -> bool {
        self.paused && self.live.values().any(|l| l.training)
    }

    /// Where the search stands.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// True once the user confirmed stopping the search here.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested
    }

    /// True while paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Updates the clock (called on every redraw tick).
    pub fn tick(&mut self, since_start: Duration) {
        self.clock = since_start;
    }

    /// Adds a line to the log pane (also used by the event loop for its own
    /// problems, e.g. a command that could not be sent).
    pub fn note(&mut self, level: &str, text: impl Into<String>) {
        self.log.push_back(LogLine {
            level: level.into(),
            text: text.into(),
        });
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
    }

    /// Marks the event stream as ended (engine gone, or the run's log closed).
    pub fn stream_ended(&mut self) {
        if !matches!(self.state, RunState::Finished | RunState::Stopped) {
            self.state = RunState::Gone;
            self.note("warn", "the search's event stream ended");
        }
        for live in self.live.values_mut() {
            live.training = false;
        }
    }

    /// Updates the state with one engine event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run,
                devices,
                generations,
                individuals,
                min_params,
                max_params,
                resumed,
            } => {
                self.run = RunInfo {
                    run: run.clone(),
                    devices: devices.clone(),
                    generations: *generations,
                    individuals: *individuals,
                    min_params: *min_params,
                    max_params: *max_params,
                    resumed: *resumed,
                };
                self.state = RunState::Running;
                self.paused = false;
                // A resumed run retrains whatever was in flight.
                for live in self.live.values_mut() {
                    live.training = false;
                }
                let verb = if *resumed { "resumed" } else { "started" };
                self.note("info", format!("{verb} run {run} on {}", devices.join(",")));
            }
            Event::Generation {
                generation,
                members,
            } => {
                let new = *generation != self.generation || self.population.is_empty();
                let selected = self.population.get(self.pop_selected).map(|m| m.id);
                self.generation = *generation;
                self.population = members.clone();
                self.pop_selected = if new {
                    0
                } else {
                    selected
                        .and_then(|id| self.population.iter().position(|m| m.id == id))
                        .unwrap_or(self.pop_selected)
                };
                self.clamp_selection();
                for m in members {
                    self.consider_best(m);
                }
            }
            Event::Queued { id } => self.live.entry(*id).or_default().training = false,
            Event::Started { id, device, steps } => {
                let live = self.live.entry(*id).or_default();
                *live = Live {
                    device: device.clone(),
                    steps: *steps,
                    training: true,
                    ..Live::default()
                };
            }
            Event::JobState {
                id,
                job,
                state,
                node,
                ..
            } => {
                let live = self.live.entry(*id).or_default();
                live.job = Some((job.clone(), state.clone()));
                live.device = if node.is_empty() {
                    format!("slurm job {job} ({state})")
                } else {
                    format!("slurm job {job} on {node} ({state})")
                };
            }
            Event::Progress {
                id,
                step,
                steps,
                loss,
                lr,
            } => {
                let live = self.live.entry(*id).or_default();
                live.step = *step;
                live.steps = *steps;
                live.loss = Some(*loss);
                live.lr = Some(*lr);
                if loss.is_finite() {
                    live.curve.push((*step as f64, *loss));
                    if live.curve.len() > CURVE_POINTS {
                        // Thin, keeping the newest point.
                        let last = *live.curve.last().expect("not empty");
                        let mut i = 0;
                        live.curve.retain(|_| {
                            i += 1;
                            i % 2 == 1
                        });
                        if live.curve.last() != Some(&last) {
                            live.curve.push(last);
                        }
                    }
                }
            }
            Event::Evaluated {
                id,
                evaluation,
                params,
                multi_adds,
            } => {
                self.trained_seconds += evaluation.seconds;
                self.trained_count += 1;
                self.finish_member(*id, Status::Evaluated(evaluation.clone()));
                if let Some(m) = self.population.iter_mut().find(|m| m.id == *id) {
                    m.params = *params;
                    m.multi_adds = *multi_adds;
                }
            }
            Event::Cached { id, evaluation } => {
                self.finish_member(*id, Status::Cached(evaluation.clone()))
            }
            Event::Failed { id, reason } => {
                self.finish_member(
                    *id,
                    Status::Failed {
                        reason: reason.clone(),
                    },
                );
                self.note("warn", format!("#{id} failed: {reason}"));
            }
            Event::Killed { id } => {
                // A queued member's kill is logged by the engine; a training
                // one's only says "killing", so say when it is over.
                if self.live.get(id).is_some_and(|l| l.training) {
                    self.note("info", format!("#{id} killed: its training was stopped"));
                }
                self.finish_member(*id, Status::Killed)
            }
            Event::GenerationDone {
                generation,
                best,
                mean,
                elites,
            } => {
                self.summaries.insert(*generation, (*best, *mean));
                self.set_elites(elites);
            }
            Event::Paused => self.paused = true,
            Event::Resumed => {
                self.paused = false;
                self.note("info", "resumed: training starts again");
            }
            Event::Log { level, message } => {
                // A failed export has no event of its own: answer the request here.
                if level == "error"
                    && message.starts_with("export failed")
                    && self.export_asked.take().is_some()
                {
                    self.flash = Some(message.clone());
                }
                self.note(level, message.clone())
            }
            // The engine logs every export; the footer answers only this
            // dashboard's own request, not replayed or other viewers' ones.
            Event::Exported { dir, count } => {
                if let Some(asked) = self.export_asked.take() {
                    self.flash = Some(export_reply(*count, asked, dir));
                }
            }
            Event::Finished {
                complete,
                elites,
                cache_hits,
            } => {
                self.set_elites(elites);
                self.cache_hits = Some(*cache_hits);
                self.state = if *complete {
                    RunState::Finished
                } else {
                    RunState::Stopped
                };
                // Prompts that would steer the ended search make no sense now.
                self.overlay = match self.overlay.take() {
                    Some(o @ (Overlay::Help | Overlay::Detail)) => Some(o),
                    _ => None,
                };
                for live in self.live.values_mut() {
                    live.training = false;
                }
                self.note(
                    "info",
                    if *complete {
                        "search finished: q to leave".to_string()
                    } else {
                        format!(
                            "search stopped and checkpointed: resume it with esr-ea search --resume {}",
                            self.run_dir_text()
                        )
                    },
                );
            }
        }
    }

    fn finish_member(&mut self, id: u64, status: Status) {
        if let Some(live) = self.live.get_mut(&id) {
            live.training = false;
        }
        if self.overlay == Some(Overlay::ConfirmKill { id }) {
            self.overlay = None;
            self.flash = Some(format!(
                "#{id} ended meanwhile ({}): nothing to kill",
                status.name()
            ));
        }
        if let Some(m) = self.population.iter_mut().find(|m| m.id == id) {
            m.status = status;
            let m = m.clone();
            self.consider_best(&m);
        }
    }

    fn set_elites(&mut self, elites: &[Member]) {
        self.elites = elites.to_vec();
        if let Some(first) = elites.first() {
            let first = first.clone();
            self.consider_best(&first);
        }
        self.elite_selected = self.elite_selected.min(self.elites.len().saturating_sub(1));
    }

    fn consider_best(&mut self, m: &Member) {
        let Some(f) = m.fitness() else { return };
        let better = match self.best.as_ref().and_then(Member::fitness) {
            Some(best) => f > best,
            None => true,
        };
        if better {
            self.best = Some(m.clone());
        }
    }

    fn clamp_selection(&mut self) {
        self.pop_selected = self
            .pop_selected
            .min(self.population.len().saturating_sub(1));
        self.elite_selected = self.elite_selected.min(self.elites.len().saturating_sub(1));
    }

    /// The member the detail pane shows: the selected elite when the elites
    /// have the focus, else the selected population member.
    pub fn selected_member(&self) -> Option<&Member> {
        match self.focus {
            Pane::Elites => self.elites.get(self.elite_selected),
            _ => self.population.get(self.pop_selected),
        }
    }

    /// A member's display state, its label and tone (`train 45%`, `hand-made`, …).
    pub fn member_state(&self, m: &Member) -> (String, Tone) {
        match &m.status {
            Status::Pending => match self.live.get(&m.id) {
                Some(l) if l.training => {
                    let pct = (l.step * 100).checked_div(l.steps).unwrap_or(0);
                    match &l.job {
                        // squeue's short state codes keep the column narrow.
                        Some((job, state)) if state == "RUNNING" => {
                            (format!("R {job} {pct}%"), Tone::Training)
                        }
                        Some((job, state)) => {
                            (format!("{} {job}", short_state(state)), Tone::Queued)
                        }
                        None => (format!("train {pct}%"), Tone::Training),
                    }
                }
                _ if m.origin.is_hand_made() => ("hand-made".into(), Tone::HandMade),
                _ => ("queued".into(), Tone::Queued),
            },
            Status::Evaluated(_) => ("done".into(), Tone::Done),
            Status::Cached(_) => ("cached".into(), Tone::Cached),
            Status::Failed { .. } => ("failed".into(), Tone::Failed),
            Status::Killed => ("killed".into(), Tone::Killed),
        }
    }

    /// Members of the current generation that are done, and being trained.
    pub fn counts(&self) -> (usize, usize) {
        let done = self
            .population
            .iter()
            .filter(|m| m.status.is_done())
            .count();
        let training = self
            .population
            .iter()
            .filter(|m| !m.status.is_done() && self.live.get(&m.id).is_some_and(|l| l.training))
            .count();
        (done, training)
    }

    /// Elapsed time: the dashboard's clock, or the training time the events
    /// account for (divided over the devices) when larger, as after attaching
    /// to a run that started earlier.
    pub fn elapsed(&self) -> Duration {
        let devices = self.run.devices.len().max(1) as f64;
        let trained = Duration::from_secs_f64((self.trained_seconds / devices).max(0.0));
        self.clock.max(trained)
    }

    /// Estimated time left: the mean training time of the members trained so
    /// far times the members left, spread over the devices.
    pub fn eta(&self) -> Option<Duration> {
        if self.trained_count == 0 || matches!(self.state, RunState::Finished) {
            return None;
        }
        let mean = self.trained_seconds / self.trained_count as f64;
        let waiting = self
            .population
            .iter()
            .filter(|m| !m.status.is_done())
            .count();
        let later = self
            .run
            .generations
            .saturating_sub(self.generation + 1)
            .saturating_mul(self.run.individuals);
        let devices = self.run.devices.len().max(1) as f64;
        Some(Duration::from_secs_f64(
            mean * (waiting + later) as f64 / devices,
        ))
    }

    /// Handles one key press; returns what the event loop must do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        self.flash = None;
        if self.overlay.is_some() {
            return self.overlay_key(key);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => self.quit_key(),
            KeyCode::Char('q') => self.quit_key(),
            KeyCode::Char('?') => {
                self.overlay = Some(Overlay::Help);
                None
            }
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Pane::Population => Pane::Elites,
                    Pane::Elites => Pane::Log,
                    Pane::Log => Pane::Population,
                };
                None
            }
            KeyCode::BackTab => {
                self.focus = match self.focus {
                    Pane::Population => Pane::Log,
                    Pane::Elites => Pane::Population,
                    Pane::Log => Pane::Elites,
                };
                None
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Enter => {
                if self.selected_member().is_some() {
                    self.overlay = Some(Overlay::Detail);
                } else {
                    self.flash = Some("no member to show yet".into());
                }
                None
            }
            KeyCode::Char('p') => {
                if !self.can_steer() {
                    return None;
                }
                let command = if self.paused {
                    Command::Resume
                } else {
                    Command::Pause
                };
                self.send(command)
            }
            KeyCode::Char('x') => {
                let id = self.target("kill", false)?;
                self.overlay = Some(Overlay::ConfirmKill { id });
                None
            }
            KeyCode::Char('m') => {
                let id = self.target("mutate", true)?;
                self.send(Command::Mutate { id, genes: None })
            }
            KeyCode::Char('i') => {
                if self.can_steer() {
                    self.overlay = Some(Overlay::Inject(Input::default()));
                }
                None
            }
            KeyCode::Char('e') => {
                if self.can_steer() {
                    let n = if self.elites.is_empty() {
                        self.problem.policy.num_elitism
                    } else {
                        self.elites.len()
                    };
                    self.overlay = Some(Overlay::Export(Input {
                        text: n.max(1).to_string(),
                        error: None,
                    }));
                }
                None
            }
            _ => None,
        }
    }

    fn quit_key(&mut self) -> Option<Action> {
        match self.state {
            RunState::Finished | RunState::Stopped | RunState::Gone => {
                Some(Action::Quit { stop_search: false })
            }
            // Asked twice: leave now; the engine finishes its checkpoint.
            RunState::Stopping => Some(Action::Quit { stop_search: false }),
            RunState::Starting | RunState::Running | RunState::Paused => {
                self.overlay = Some(Overlay::ConfirmQuit);
                None
            }
        }
    }

    /// True when commands can reach a live search; otherwise says why in the footer.
    fn can_steer(&mut self) -> bool {
        let why = match self.state {
            RunState::Finished => "the search has finished: nothing left to steer (q leaves)",
            RunState::Stopped => "the search was stopped: resume it to steer it (q leaves)",
            RunState::Gone => "the search is gone: nothing can be sent (q leaves)",
            RunState::Stopping => "the search is stopping: q leaves now",
            RunState::Starting | RunState::Running | RunState::Paused => return true,
        };
        self.flash = Some(why.into());
        false
    }

    /// The selected population member a kill/mutate acts on, if it may.
    fn target(&mut self, verb: &str, queued_only: bool) -> Option<u64> {
        if !self.can_steer() {
            return None;
        }
        if self.focus != Pane::Population {
            self.flash = Some(format!(
                "{verb} acts on the population table: Tab to it and select a member"
            ));
            return None;
        }
        let Some(m) = self.population.get(self.pop_selected) else {
            self.flash = Some("no member selected".into());
            return None;
        };
        let (label, _) = self.member_state(m);
        let training = self.live.get(&m.id).is_some_and(|l| l.training);
        let refusal = if m.status.is_done() {
            Some(format!(
                "#{} is {label}: only queued or training members can be changed",
                m.id
            ))
        } else if queued_only && training {
            Some(format!(
                "#{} is training: only queued members can be mutated (kill it first)",
                m.id
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            self.flash = Some(why);
            return None;
        }
        Some(m.id)
    }

    fn send(&mut self, command: Command) -> Option<Action> {
        let what = match &command {
            Command::Pause => "pause".to_string(),
            Command::Resume => "resume".to_string(),
            Command::Kill { id } => format!("kill #{id}"),
            Command::Mutate { id, .. } => format!("mutate #{id}"),
            Command::Inject { genes } => format!("inject {}", genes.join(" ")),
            Command::Export { top, .. } => format!("export the best {top}"),
            Command::Stop => "stop".to_string(),
        };
        self.note("you", what.clone());
        self.flash = Some(format!("sent: {what}"));
        Some(Action::Send(command))
    }

    fn move_selection(&mut self, delta: isize) -> Option<Action> {
        let step = |index: usize, len: usize| -> usize {
            if len == 0 {
                return 0;
            }
            (index as isize)
                .saturating_add(delta)
                .clamp(0, len as isize - 1) as usize
        };
        match self.focus {
            Pane::Population => self.pop_selected = step(self.pop_selected, self.population.len()),
            Pane::Elites => self.elite_selected = step(self.elite_selected, self.elites.len()),
            // Up scrolls back in time.
            Pane::Log => {
                let max = self.log.len().saturating_sub(1) as isize;
                self.log_scroll = (self.log_scroll as isize)
                    .saturating_sub(delta)
                    .clamp(0, max) as usize;
            }
        }
        None
    }

    fn overlay_key(&mut self, key: KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let overlay = self.overlay.take()?;
        match overlay {
            Overlay::Help => {
                if !matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Enter
                ) {
                    self.overlay = Some(Overlay::Help);
                }
                None
            }
            Overlay::Detail => match key.code {
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => None,
                KeyCode::Up | KeyCode::Char('k') | KeyCode::Down | KeyCode::Char('j') => {
                    let delta = if matches!(key.code, KeyCode::Up | KeyCode::Char('k')) {
                        -1
                    } else {
                        1
                    };
                    self.move_selection(delta);
                    self.overlay = Some(Overlay::Detail);
                    None
                }
                _ => {
                    self.overlay = Some(Overlay::Detail);
                    None
                }
            },
            Overlay::ConfirmKill { id } => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => self.send(Command::Kill { id }),
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.flash = Some(format!("#{id} not killed"));
                    None
                }
                _ => {
                    self.overlay = Some(overlay);
                    None
                }
            },
            Overlay::ConfirmQuit => match (key.code, self.mode) {
                (KeyCode::Char('y') | KeyCode::Char('Y'), _) => {
                    self.state = RunState::Stopping;
                    self.stop_requested = true;
                    self.note("you", "stop the search (checkpoint, resumable)");
                    Some(Action::Quit { stop_search: true })
                }
                (KeyCode::Char('n') | KeyCode::Char('N'), Mode::Attached) => Some(Action::Detach),
                (KeyCode::Char('n') | KeyCode::Char('N'), Mode::InProcess) | (KeyCode::Esc, _) => {
                    self.flash = Some("still watching".into());
                    None
                }
                _ => {
                    self.overlay = Some(overlay);
                    None
                }
            },
            Overlay::Inject(mut input) => match key.code {
                KeyCode::Esc => None,
                KeyCode::Enter => match check_genes(&self.problem, &input.text) {
                    Ok(checked) => {
                        let genes = checked.genes.iter().map(|g| g.to_string()).collect();
                        self.send(Command::Inject { genes })
                    }
                    Err(why) => {
                        input.error = Some(why);
                        self.overlay = Some(Overlay::Inject(input));
                        None
                    }
                },
                _ => {
                    edit(&mut input, key.code, ctrl);
                    self.overlay = Some(Overlay::Inject(input));
                    None
                }
            },
            Overlay::Export(mut input) => match key.code {
                KeyCode::Esc => None,
                KeyCode::Enter => match input.text.trim().parse::<usize>() {
                    Ok(top) if top >= 1 => {
                        self.export_asked = Some(top);
                        self.send(Command::Export { top, dir: None })
                    }
                    _ => {
                        input.error = Some(format!(
                            "'{}' is not a count: type how many of the best architectures to export (a whole number >= 1)",
                            input.text.trim()
                        ));
                        self.overlay = Some(Overlay::Export(input));
                        None
                    }
                },
                _ => {
                    edit(&mut input, key.code, ctrl);
                    self.overlay = Some(Overlay::Export(input));
                    None
                }
            },
        }
    }
}

/// The footer's answer to an export: how many, and why fewer than asked.
fn export_reply(count: usize, asked: usize, dir: &str) -> String {
    let noun = if count == 1 {
        "architecture"
    } else {
        "architectures"
    };
    if count < asked {
        format!("exported {count} {noun} to {dir} (asked {asked}: only {count} trained so far)")
    } else {
        format!("exported {count} {noun} to {dir}")
    }
}

/// Line editing for prompts: type, Backspace, Ctrl-U clears. Any edit
/// clears the previous error.
fn edit(input: &mut Input, code: KeyCode, ctrl: bool) {
    match code {
        KeyCode::Char('u') if ctrl => input.text.clear(),
        KeyCode::Char(_) if ctrl => return,
        KeyCode::Char(c) if input.text.len() < MAX_INPUT && (c.is_ascii_graphic() || c == ' ') => {
            input.text.push(c)
        }
        KeyCode::Backspace => {
            input.text.pop();
        }
        _ => return,
    }
    input.error = None;
}

/// squeue's compact code for a Slurm job state (`PENDING` → `PD`).
fn short_state(state: &str) -> &str {
    match state {
        "PENDING" => "PD",
        "RUNNING" => "R",
        "COMPLETING" => "CG",
        "COMPLETED" => "CD",
        "CONFIGURING" => "CF",
        "FAILED" => "F",
        "CANCELLED" => "CA",
        "TIMEOUT" => "TO",
        "OUT_OF_MEMORY" => "OOM",
        "NODE_FAIL" => "NF",
        "PREEMPTED" => "PR",
        "SUSPENDED" => "S",
        other => other,
    }
}
