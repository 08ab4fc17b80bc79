//! What a viewer knows of a run, built only from the engine's [`Event`]s:
//! the one reducer of the event stream that the dashboard, the headless
//! printer and `attach` all read. Selection, focus and prompts are the
//! dashboard's own and stay out of it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::clock::RunClock;
use super::events::{Command, Event};
use crate::search::{Member, Problem, Status};

mod bicubic;
mod stages;
pub use stages::{BenchRowView, FinalLive, StagesView};

/// Log lines kept for the log pane.
pub const LOG_LINES: usize = 200;
/// Loss points kept per member; longer curves are thinned (every other point).
pub const CURVE_POINTS: usize = 1000;

/// The run as announced by `RunStarted` (or the problem, before that).
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// Bicubic PSNR on the fitness's validation images, when the run told it.
    pub bicubic_psnr: Option<f64>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunState {
    /// No `RunStarted` yet.
    #[default]
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

impl RunInfo {
    /// The run as its problem plans it, before `RunStarted` names it.
    pub fn planned(problem: &Problem) -> RunInfo {
        RunInfo {
            run: String::new(),
            devices: Vec::new(),
            generations: problem.policy.num_generation,
            individuals: problem.policy.num_individual,
            min_params: problem.range.min_params,
            max_params: problem.range.max_params,
            resumed: false,
            bicubic_psnr: None,
        }
    }
}

/// A run as its events tell it.
#[derive(Debug, Clone, Default)]
pub struct RunView {
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
    /// The run's clock as shown (see [`RunClock`]): wall time the run's
    /// processes have spent on it, stopped once the run has ended.
    pub clock: Duration,
    /// The run directory, when known: named in messages instead of a placeholder.
    pub run_dir: Option<PathBuf>,
    /// The stages after the search (fully training, benchmarks).
    pub stages: StagesView,
    state: RunState,
    paused: bool,
    trained_seconds: f64,
    trained_count: usize,
    /// The run's clock, when this process runs the search itself.
    run_clock: Option<RunClock>,
    /// The stamp of the latest event read from the log, and when it was read.
    last_stamp: Option<(f64, Instant)>,
}

/// The member an event ends, with the status it ends in.
pub fn ended_member(event: &Event) -> Option<(u64, Status)> {
    match event {
        Event::Evaluated { id, evaluation, .. } => {
            Some((*id, Status::Evaluated(evaluation.clone())))
        }
        Event::Cached { id, evaluation } => Some((*id, Status::Cached(evaluation.clone()))),
        Event::Failed { id, reason } => Some((
            *id,
            Status::Failed {
                reason: reason.clone(),
            },
        )),
        Event::Killed { id } => Some((*id, Status::Killed)),
        Event::Stopped { id, stop } => Some((*id, Status::Stopped(stop.clone()))),
        _ => None,
    }
}

impl RunView {
    /// A view of a run described by `run`, before any event.
    pub fn new(run: RunInfo) -> RunView {
        RunView {
            run,
            ..RunView::default()
        }
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

    /// True while paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Marks the search as told to stop by this viewer (until its events say it stopped).
    pub fn stopping(&mut self) {
        self.state = RunState::Stopping;
    }

    /// Reads the run's clock from `clock` (the search runs in this process).
    pub fn set_run_clock(&mut self, clock: RunClock) {
        self.run_clock = Some(clock);
    }

    /// Tells the view the run's clock of the next event, its `"t"` in
    /// `events.jsonl` (attached or replayed): between events the clock runs
    /// on from the latest stamp.
    pub fn stamp(&mut self, t: f64) {
        self.last_stamp = Some((t, Instant::now()));
        self.clock = Duration::from_secs_f64(t.max(0.0));
    }

    /// True once the run has ended: the clock stands still.
    fn ended(&self) -> bool {
        matches!(
            self.state,
            RunState::Finished | RunState::Stopped | RunState::Gone
        )
    }

    /// Moves the clock to now, unless the run has ended.
    pub fn tick(&mut self) {
        if self.ended() {
            return;
        }
        if let Some(clock) = &self.run_clock {
            self.clock = clock.elapsed();
        } else if let Some((t, at)) = self.last_stamp {
            self.clock = Duration::from_secs_f64(t + at.elapsed().as_secs_f64());
        }
    }

    /// True when a `Generation` event for `generation` starts a new one
    /// (rather than restating the current one after a hand change).
    pub fn is_new_generation(&self, generation: usize) -> bool {
        generation != self.generation || self.population.is_empty()
    }

    /// Adds a line to the log (also for a viewer's own messages, e.g. a
    /// command that could not be sent).
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

    /// Why the search would refuse `command` as the run stands, if it would:
    /// what a front end checks before sending (the search checks again when
    /// it arrives; hand genes are checked against the problem separately).
    pub fn refusal(&self, command: &Command) -> Option<String> {
        let verb = command.verb();
        let steers_members = !matches!(command, Command::Pause | Command::Resume | Command::Stop);
        match self.state {
            RunState::Stopped => {
                return Some(format!(
                    "{verb}: the search was stopped; resume it to steer it"
                ))
            }
            RunState::Gone => return Some(format!("{verb}: the search is gone")),
            _ if steers_members
                && (self.stages.after_search() || self.state == RunState::Finished) =>
            {
                return Some(format!(
                    "{verb}: the search has finished; now only pause, resume and stop apply"
                ))
            }
            _ => {}
        }
        let (id, queued_only) = match command {
            Command::Kill { id } => (*id, false),
            Command::Mutate { id, .. } => (*id, true),
            _ => return None,
        };
        let Some(member) = self.population.iter().find(|m| m.id == id) else {
            let ids = match (self.population.first(), self.population.last()) {
                (Some(first), Some(last)) => {
                    format!(" (its members are #{}..#{})", first.id, last.id)
                }
                _ => String::new(),
            };
            return Some(format!(
                "{verb} #{id}: no member #{id} in generation {}{ids}",
                self.generation + 1
            ));
        };
        if member.status.is_done() {
            return Some(format!(
                "{verb} #{id}: it is {}; only queued or training members can be changed",
                member.status.name()
            ));
        }
        let training = self.live.get(&id).is_some_and(|l| l.training);
        (queued_only && training).then(|| {
            format!(
                "{verb} #{id}: it is training; only queued members can be mutated (kill it first)"
            )
        })
    }

    /// Updates the view with one engine event.
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
                bicubic_psnr,
            } => {
                // A run saved by an older esr-ea restates no bicubic line; keep the known one.
                let bicubic_psnr = bicubic_psnr.or(self.run.bicubic_psnr);
                self.run = RunInfo {
                    run: run.clone(),
                    devices: devices.clone(),
                    generations: *generations,
                    individuals: *individuals,
                    min_params: *min_params,
                    max_params: *max_params,
                    resumed: *resumed,
                    bicubic_psnr,
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
                self.generation = *generation;
                self.population = members.clone();
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
            Event::Stopped { id, stop } => {
                self.finish_member(*id, Status::Stopped(stop.clone()));
                self.note(
                    "info",
                    format!(
                        "#{id} stopped by {} after {}/{} steps",
                        stop.rule_name(),
                        stop.step,
                        stop.steps
                    ),
                );
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
            Event::Log { level, message } => self.note(level, message.clone()),
            // Its sentence is in the log already; only the asker reads it.
            Event::Exported { .. } | Event::Answered { .. } => {}
            Event::StageStarted { .. }
            | Event::StageDone { .. }
            | Event::FinalStarted { .. }
            | Event::FinalProgress { .. }
            | Event::FinalValidated { .. }
            | Event::FinalDone { .. }
            | Event::BenchRow { .. }
            | Event::PipelineDone { .. } => self.apply_stage(event),
            Event::Finished {
                complete,
                elites,
                cache_hits,
            } => {
                // The clock stops with the search, at the time of this event.
                self.tick();
                self.set_elites(elites);
                self.cache_hits = Some(*cache_hits);
                self.state = if *complete {
                    RunState::Finished
                } else {
                    RunState::Stopped
                };
                for live in self.live.values_mut() {
                    live.training = false;
                }
                if *complete {
                    if let Some(verdict) = self.bicubic_verdict() {
                        self.note("info", verdict);
                    }
                }
                self.note(
                    "info",
                    if *complete {
                        format!(
                            "search finished in {}: q to leave",
                            crate::format::duration(self.clock.as_secs_f64())
                        )
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

    /// Elapsed time on the run's clock (see [`RunView::clock`]).
    pub fn elapsed(&self) -> Duration {
        self.clock
    }

    /// Estimated time left in the current stage: during the search, the
    /// mean training time of the members trained so far times the members
    /// left, spread over the devices; after it, the stage's own estimate
    /// ([`StagesView::eta`]). None once the run has ended.
    pub fn eta(&self) -> Option<Duration> {
        if matches!(
            self.state,
            RunState::Finished | RunState::Stopped | RunState::Gone
        ) {
            return None;
        }
        if self.stages.after_search() {
            return self.stages.eta();
        }
        if self.trained_count == 0 {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_search_only_pause_resume_and_stop_are_offered() {
        let mut view = RunView::default();
        view.apply(&Event::StageStarted {
            stage: "fully_train".into(),
            index: 1,
            stages: 3,
        });
        let inject = Command::Inject {
            genes: vec!["C_4_8_8".into()],
        };
        let why = view.refusal(&inject).expect("refused");
        assert!(why.contains("the search has finished"), "{why}");
        assert!(view.refusal(&Command::Pause).is_none());
        assert!(view.refusal(&Command::Stop).is_none());
    }

    #[test]
    fn a_member_of_another_generation_is_named_as_missing() {
        let view = RunView::default();
        let why = view.refusal(&Command::Kill { id: 7 }).expect("refused");
        assert_eq!(why, "kill #7: no member #7 in generation 1");
    }
}
