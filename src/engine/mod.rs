//! The background engine: evaluates a search's members on worker threads
//! (one per device), emits [`Event`]s and obeys [`Command`]s. It never
//! touches the terminal; front ends (TUI, headless printer, other processes
//! through `control.jsonl`) only read events and send commands.

pub mod clock;
pub mod control;
pub mod events;
pub mod executor;
pub mod export;
pub mod lock;
pub mod pipeline;
pub mod results;
pub mod run_view;
pub mod rundir;
pub mod start;
pub mod thin;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use executor::Executor;

use anyhow::Result;

pub use crate::search::TrainingRules;
pub use crate::seeds::member_seed;
pub use crate::train::fitness::{Fitness, Job, Leg, LegEnd, LegStart, Outcome};
pub use crate::train::StepReport;
pub use events::{Answer, Command, Event};
pub use run_view::RunView;
pub use rundir::RunDir;

use crate::search::{Evaluation, Search, Status};
use crate::space::GeneList;

/// A message into the engine thread.
#[derive(Debug)]
pub enum Inbox {
    /// From a front end.
    Command(Command),
    /// From a front end that waits for the answer: the engine (or the stage
    /// after the search) emits [`Event::Answered`] with this token.
    Asked {
        /// What is asked.
        command: Command,
        /// The token the answer carries.
        ack: String,
    },
    /// Progress from a worker.
    Step(u64, StepReport),
    /// A problem to tell the user (e.g. an unreadable control line).
    Warn(String),
    /// An event from an executor (e.g. a Slurm job's state), passed on as it is.
    Emit(Event),
    /// An executor replaced member `id`'s outside job (resubmitted after a node failure).
    Resubmitted {
        /// Member id.
        id: u64,
        /// The new job's id.
        handle: String,
    },
    /// An executor finished a job.
    Done {
        /// Member id.
        id: u64,
        /// How it ended.
        outcome: Outcome,
    },
}

/// What the engine needs to run.
pub struct EngineSetup {
    /// The search, new or resumed.
    pub search: Search,
    /// Its run directory.
    pub run: RunDir,
    /// Run seed (for per-member training seeds).
    pub seed: u64,
    /// Devices, one worker each.
    pub devices: Vec<String>,
    /// True when continuing a saved state.
    pub resumed: bool,
    /// How long each member trains and when the engine may stop it early:
    /// turned into each job's checks and leg here, never asked of the trainer.
    pub rules: TrainingRules,
    /// Lines for the run's log right after it starts (the memory plan,
    /// config warnings): what the front ends show once they own the screen.
    pub notes: Vec<(String, String)>,
}

/// A running engine: send commands, join when done.
pub struct EngineHandle {
    inbox: Sender<Inbox>,
    thread: Option<JoinHandle<Result<Search>>>,
}

impl EngineHandle {
    /// Sends a command (ignored once the engine has ended).
    pub fn send(&self, command: Command) {
        let _ = self.inbox.send(Inbox::Command(command));
    }

    /// A sender that other threads (signal handler, control file) can use.
    pub fn sender(&self) -> Sender<Inbox> {
        self.inbox.clone()
    }

    /// Waits for the engine to end and returns the final search.
    pub fn join(mut self) -> Result<Search> {
        match self.thread.take().expect("joined once").join() {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the engine thread panicked"),
        }
    }
}

/// Starts the engine thread with local workers evaluating with `fitness`,
/// one per entry of `setup.devices`; events go to `events`.
pub fn spawn(setup: EngineSetup, fitness: Arc<dyn Fitness>, events: Sender<Event>) -> EngineHandle {
    let local = executor::local::LocalExecutor::new(setup.devices.clone(), fitness);
    spawn_with(setup, Box::new(local), events)
}

/// Starts the engine thread with the given executor (`setup.devices` is
/// then unused); events go to `events`.
pub fn spawn_with(
    setup: EngineSetup,
    executor: Box<dyn Executor>,
    events: Sender<Event>,
) -> EngineHandle {
    let (inbox_tx, inbox_rx) = mpsc::channel();
    let tx = inbox_tx.clone();
    let thread = std::thread::Builder::new()
        .name("esr-ea-engine".into())
        .spawn(move || Engine::new(setup, executor, events, tx, inbox_rx).run())
        .expect("spawn engine thread");
    EngineHandle {
        inbox: inbox_tx,
        thread: Some(thread),
    }
}

struct InFlight {
    key: String,
    cancel: Arc<AtomicBool>,
}

struct Engine {
    search: Search,
    run: RunDir,
    seed: u64,
    resumed: bool,
    rules: TrainingRules,
    executor: Box<dyn Executor>,
    events: Sender<Event>,
    inbox_tx: Sender<Inbox>,
    inbox: Receiver<Inbox>,
    in_flight: HashMap<u64, InFlight>,
    /// What of each training's step reports goes into the events.
    progress: thin::ProgressThinner,
    /// [`EngineSetup::notes`], logged once at start.
    notes: Vec<(String, String)>,
    paused: bool,
    stopping: bool,
    /// The first failed write of the run's own files: the search stops on it.
    storage_error: Option<String>,
}

impl Engine {
    fn new(
        setup: EngineSetup,
        executor: Box<dyn Executor>,
        events: Sender<Event>,
        inbox_tx: Sender<Inbox>,
        inbox: Receiver<Inbox>,
    ) -> Engine {
        Engine {
            search: setup.search,
            run: setup.run,
            seed: setup.seed,
            resumed: setup.resumed,
            rules: setup.rules,
            notes: setup.notes,
            executor,
            events,
            inbox_tx,
            inbox,
            in_flight: HashMap::new(),
            progress: thin::ProgressThinner::default(),
            paused: false,
            stopping: false,
            storage_error: None,
        }
    }

    fn emit(&mut self, event: Event) {
        if self.storage_error.is_none() {
            if let Err(e) = self.run.append_event(&event) {
                self.storage_failed(format!("cannot append to events.jsonl: {e:#}"));
            }
        }
        let _ = self.events.send(event);
    }

    /// A write of the run's own files failed (full or read-only disk): stop
    /// cleanly, keep the last good state, and never charge it to a member.
    fn storage_failed(&mut self, message: String) {
        if self.storage_error.is_some() {
            return;
        }
        self.storage_error = Some(message.clone());
        let _ = self.events.send(Event::Log {
            level: "error".into(),
            message: format!("{message}; stopping, the last good state is kept"),
        });
        self.command(Command::Stop);
    }

    fn log(&mut self, level: &str, message: String) {
        self.emit(Event::Log {
            level: level.into(),
            message,
        });
    }

    fn checkpoint(&mut self) {
        if self.storage_error.is_some() {
            // After a failed write, nothing more is written: what is on disk
            // is the last state that was completely saved.
            return;
        }
        if let Err(e) = self.run.save_state(&self.search.state) {
            self.storage_failed(format!("cannot save the search state: {e:#}"));
        }
    }

    fn run(mut self) -> Result<Search> {
        self.executor.start(self.inbox_tx.clone());
        // Outside jobs of members that ended (killed while the coordinator was down) are stale.
        let pending: Vec<u64> = self
            .search
            .state
            .population
            .iter()
            .filter(|m| !m.status.is_done())
            .map(|m| m.id)
            .collect();
        self.search.state.jobs.retain(|id, _| pending.contains(id));
        let watching = Arc::new(AtomicBool::new(false));
        let watcher = control::watch(
            self.run.file(rundir::files::CONTROL),
            self.inbox_tx.clone(),
            Arc::clone(&watching),
        );
        let p = &self.search.problem;
        let started = Event::RunStarted {
            run: self.run.name(),
            devices: self.executor.describe(),
            generations: p.policy.num_generation,
            individuals: p.policy.num_individual,
            min_params: p.range.min_params,
            max_params: p.range.max_params,
            resumed: self.resumed,
            bicubic_psnr: self.search.state.bicubic_psnr,
        };
        self.emit(started);
        for (level, message) in std::mem::take(&mut self.notes) {
            self.log(&level, message);
        }
        self.checkpoint();
        self.announce_generation();
        let complete = loop {
            if self.stopping && self.in_flight.is_empty() {
                break false;
            }
            if !self.stopping && self.search.state.finished {
                break true;
            }
            self.dispatch();
            if self.in_flight.is_empty()
                && !self.paused
                && !self.stopping
                && self.search.halving_due()
            {
                self.halve();
                continue;
            }
            if self.in_flight.is_empty()
                && self.search.generation_complete()
                && !self.search.state.finished
            {
                self.finish_generation();
                continue;
            }
            match self.inbox.recv_timeout(Duration::from_millis(200)) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break false,
            }
        };
        self.checkpoint();
        if let Some(rule) = self.rules.stopping_rule_name() {
            let message = self.stop_summary(rule);
            self.log("info", message);
        }
        let finished = Event::Finished {
            complete,
            elites: self.search.state.elites.clone(),
            cache_hits: self.search.state.cache_hits,
        };
        self.emit(finished);
        self.executor.shutdown();
        watching.store(true, Ordering::SeqCst);
        let _ = watcher.join();
        if let Some(message) = self.storage_error {
            anyhow::bail!(
                "{message}; the search stopped with its last good state in {}: free space (or make it writable) and resume with `esr-ea search --resume {}`",
                self.run.path().display(),
                self.run.path().display()
            );
        }
        Ok(self.search)
    }

    /// What the stopping rule did, for the end of the search.
    fn stop_summary(&self, rule: &str) -> String {
        let history = &self.search.state.history;
        let tally = crate::search::StopTally::of(history);
        let trained = history
            .iter()
            .filter(|m| matches!(m.status, Status::Evaluated(_)))
            .count()
            + tally.stopped;
        let planned = trained * self.rules.steps;
        format!(
            "{rule}: stopped {} of {} trainings, saving {} of {} training steps ({:.0}%)",
            tally.stopped,
            trained,
            tally.steps_saved,
            planned,
            100.0 * tally.steps_saved as f64 / planned.max(1) as f64
        )
    }

    fn announce_generation(&mut self) {
        let event = Event::Generation {
            generation: self.search.state.generation,
            members: self.search.state.population.clone(),
        };
        self.emit(event);
        let cached: Vec<(u64, Evaluation)> = self
            .search
            .state
            .population
            .iter()
            .filter_map(|m| match &m.status {
                Status::Cached(e) => Some((m.id, e.clone())),
                _ => None,
            })
            .collect();
        for (id, evaluation) in cached {
            self.emit(Event::Cached { id, evaluation });
        }
    }

    fn finish_generation(&mut self) {
        let summary = self.search.advance();
        self.emit(Event::GenerationDone {
            generation: summary.generation,
            best: summary.best,
            mean: summary.mean,
            elites: summary.elites,
        });
        self.checkpoint();
        if !self.search.state.finished {
            self.announce_generation();
        }
    }

    fn dispatch(&mut self) {
        while !self.paused && !self.stopping && self.executor.free_slots() > 0 {
            let busy: Vec<String> = self.in_flight.values().map(|f| f.key.clone()).collect();
            let Some(index) = self.search.next_pending(&busy) else {
                return;
            };
            let member = self.search.state.population[index].clone();
            let cancel = Arc::new(AtomicBool::new(false));
            let job = Job {
                arch: self.search.problem.space.arch(member.genes.clone()),
                seed: member_seed(self.seed, member.id),
                device: String::new(),
                weights: self.run.model_path(member.id),
                cancel: Arc::clone(&cancel),
                adopt: self.search.state.jobs.get(&member.id).cloned(),
                latency_ms: self.search.known_latency(&member),
                checks: self
                    .rules
                    .median_stop
                    .as_ref()
                    .map(|rule| {
                        rule.checks(
                            self.rules.steps,
                            &self.search.state.history,
                            member.generation,
                        )
                    })
                    .unwrap_or_default(),
                leg: self.leg(&member),
                member: member.clone(),
            };
            self.in_flight.insert(
                member.id,
                InFlight {
                    key: member.key(),
                    cancel,
                },
            );
            match self.executor.submit(job) {
                Ok(submitted) => {
                    if let Some(handle) = submitted.handle {
                        self.search.state.jobs.insert(member.id, handle);
                        self.checkpoint();
                    }
                    self.emit(Event::Started {
                        id: member.id,
                        device: submitted.device,
                        steps: self.rules.steps,
                    });
                }
                Err(reason) => {
                    let flight = self.in_flight.remove(&member.id).expect("inserted above");
                    self.finish_member(member.id, flight, Outcome::Failed { reason });
                }
            }
        }
    }

    /// The part of its training a member trains next: under successive
    /// halving, from its last checkpoint (when promoted) to the next one.
    fn leg(&self, member: &crate::search::Member) -> Leg {
        if self.rules.halving.is_none() {
            return Leg::default();
        }
        let schedule = self.rules.halving_schedule();
        let from = match &member.status {
            Status::Promoted(rung) => Some(LegStart {
                checkpoint: self.run.halving_checkpoint(member.id, rung.rung),
                rung: rung.clone(),
            }),
            _ => None,
        };
        let next = from.as_ref().map_or(0, |f| f.rung.rung + 1);
        let until = schedule.get(next).map(|&(step, window)| LegEnd {
            rung: next,
            step,
            window,
            checkpoint: self.run.halving_checkpoint(member.id, next),
        });
        Leg { from, until }
    }

    /// Successive halving's cut, once the whole generation waits at a
    /// checkpoint: the better part goes on, the rest stops.
    fn halve(&mut self) {
        let Some(halving) = self.rules.halving.clone() else {
            return;
        };
        let before = self.cached_ids();
        let (promoted, stopped) = self.search.halve(&halving, self.rules.steps);
        let mut stopped_ids = Vec::with_capacity(stopped.len());
        for (id, stop) in stopped {
            self.emit(Event::Stopped { id, stop });
            self.remove_halving_checkpoints(id);
            stopped_ids.push(id);
        }
        let list = |ids: &[u64]| {
            ids.iter()
                .map(|id| format!("#{id}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.log(
            "info",
            format!(
                "successive halving: {} go on ({}), {} stop",
                promoted.len(),
                list(&promoted),
                list(&stopped_ids)
            ),
        );
        self.emit_new_cache_hits(&before);
        self.after_population_change();
    }

    /// Removes a member's halving checkpoints once it has its result (best
    /// effort: a leftover folder costs disk space, never a result).
    fn remove_halving_checkpoints(&self, id: u64) {
        for rung in 0..self.rules.halving_schedule().len() {
            let _ = std::fs::remove_dir_all(self.run.halving_checkpoint(id, rung));
        }
    }

    fn handle(&mut self, msg: Inbox) {
        match msg {
            Inbox::Step(id, r) => {
                if let Some(e) = self.progress.step(id, r.step, r.steps, r.loss, r.lr) {
                    self.emit(e);
                }
            }
            Inbox::Done { id, outcome } => {
                self.progress.forget(id);
                let Some(flight) = self.in_flight.remove(&id) else {
                    return;
                };
                self.finish_member(id, flight, outcome);
                self.executor.release(id);
            }
            Inbox::Command(command) => {
                self.command(command);
            }
            Inbox::Asked { command, ack } => {
                let answer = self.command(command);
                self.emit(answer.event(ack));
            }
            Inbox::Warn(message) => self.log("warn", message),
            Inbox::Emit(event) => self.emit(event),
            Inbox::Resubmitted { id, handle } => {
                self.search.state.jobs.insert(id, handle);
                self.checkpoint();
            }
        }
    }

    fn finish_member(&mut self, id: u64, flight: InFlight, outcome: Outcome) {
        let before: Vec<u64> = self.cached_ids();
        let killed_by_hand = flight.cancel.load(Ordering::SeqCst) && !self.stopping;
        if outcome != Outcome::Detached {
            self.search.state.jobs.remove(&id);
        }
        match outcome {
            Outcome::Evaluated { evaluation } => {
                let (params, multi_adds) = self
                    .search
                    .member_index(id)
                    .map(|i| {
                        let m = &self.search.state.population[i];
                        (m.params, m.multi_adds)
                    })
                    .unwrap_or_default();
                if self
                    .search
                    .record(id, Status::Evaluated(evaluation.clone()))
                {
                    self.emit(Event::Evaluated {
                        id,
                        evaluation,
                        params,
                        multi_adds,
                    });
                }
            }
            Outcome::Cancelled if killed_by_hand => {
                if self.search.record(id, Status::Killed) {
                    self.emit(Event::Killed { id });
                }
            }
            // Stopping: the member stays queued and is trained again (or its
            // detached job adopted) on resume.
            Outcome::Cancelled | Outcome::Detached => {}
            Outcome::StorageFailed { reason } => {
                self.storage_failed(reason);
                return;
            }
            Outcome::Stopped { stop } => {
                if self.search.record(id, Status::Stopped(stop.clone())) {
                    self.emit(Event::Stopped { id, stop });
                }
            }
            Outcome::Waiting { rung } => {
                let (step, loss) = (rung.step, rung.loss);
                if self.search.record_waiting(id, rung) {
                    self.emit(Event::Queued { id });
                    self.log(
                        "info",
                        format!(
                            "#{id} reached step {step}/{} (mean loss {loss:.5}): waits for its generation (successive halving)",
                            self.rules.steps
                        ),
                    );
                    self.after_population_change();
                }
                self.checkpoint();
                return;
            }
            Outcome::Rejected { reason, latency_ms } => {
                if self.search.record_rejected(id, reason.clone(), latency_ms) {
                    self.emit(Event::Failed { id, reason });
                }
            }
            Outcome::Failed { reason } => {
                if self.search.record(
                    id,
                    Status::Failed {
                        reason: reason.clone(),
                    },
                ) {
                    self.emit(Event::Failed { id, reason });
                }
            }
        }
        self.emit_new_cache_hits(&before);
        if self
            .search
            .member_index(id)
            .is_some_and(|i| self.search.state.population[i].status.is_done())
        {
            self.remove_halving_checkpoints(id);
        }
        self.checkpoint();
    }

    fn cached_ids(&self) -> Vec<u64> {
        self.search
            .state
            .population
            .iter()
            .filter(|m| matches!(m.status, Status::Cached(_)))
            .map(|m| m.id)
            .collect()
    }

    fn emit_new_cache_hits(&mut self, before: &[u64]) {
        let new: Vec<(u64, Evaluation)> = self
            .search
            .state
            .population
            .iter()
            .filter(|m| !before.contains(&m.id))
            .filter_map(|m| match &m.status {
                Status::Cached(e) => Some((m.id, e.clone())),
                _ => None,
            })
            .collect();
        for (id, evaluation) in new {
            self.emit(Event::Cached { id, evaluation });
        }
    }

    /// Carries out a front end's command; the answer is also the log line.
    fn command(&mut self, command: Command) -> Answer {
        match command {
            Command::Pause => {
                if self.paused {
                    return Answer::yes("already paused");
                }
                self.paused = true;
                self.emit(Event::Paused);
                self.say("paused: the training in flight finishes, no new one starts")
            }
            Command::Resume => {
                if !self.paused {
                    return Answer::yes("not paused: training goes on");
                }
                self.paused = false;
                self.emit(Event::Resumed);
                Answer::yes("resumed")
            }
            Command::Kill { id } => self.kill(id),
            Command::Mutate { id, genes } => self.mutate(id, genes),
            Command::Inject { genes } => self.inject(genes),
            Command::Export { top, dir } => self.export(top, dir),
            Command::Stop => {
                if self.stopping {
                    return Answer::yes("already stopping");
                }
                self.stopping = true;
                self.executor.stop();
                self.say("stopping: checkpointing; the training in flight is dropped and redone on resume")
            }
        }
    }

    /// Logs a command's outcome and answers it as carried out.
    fn say(&mut self, message: impl Into<String>) -> Answer {
        let message = message.into();
        self.log("info", message.clone());
        Answer::yes(message)
    }

    /// Logs why a command was refused and answers it so.
    fn refuse(&mut self, message: String) -> Answer {
        self.log("warn", message.clone());
        Answer::no(message)
    }

    fn kill(&mut self, id: u64) -> Answer {
        if let Some(flight) = self.in_flight.get(&id) {
            flight.cancel.store(true, Ordering::SeqCst);
            return self.say(format!("killing #{id}"));
        }
        let before = self.cached_ids();
        if self.search.record(id, Status::Killed) {
            self.remove_halving_checkpoints(id);
            self.emit(Event::Killed { id });
            let answer = self.say(format!("killed queued #{id}"));
            self.emit_new_cache_hits(&before);
            self.checkpoint();
            answer
        } else {
            self.refuse(format!(
                "kill {id}: no queued or training member has that id"
            ))
        }
    }

    fn mutate(&mut self, id: u64, genes: Option<Vec<String>>) -> Answer {
        if self.in_flight.contains_key(&id) {
            return self.refuse(format!(
                "mutate {id}: it is training already; kill it first"
            ));
        }
        let parsed = match genes.as_ref().map(|g| GeneList::parse_args(g)) {
            Some(Err(e)) => return self.refuse(format!("mutate {id}: {e}")),
            Some(Ok(list)) => Some(list),
            None => None,
        };
        match self.search.hand_mutate(id, parsed.as_ref()) {
            Ok(()) => {
                let genes = self
                    .search
                    .member_index(id)
                    .map(|i| self.search.state.population[i].genes.to_string());
                let answer = self.say(format!(
                    "mutated #{id} by hand: {}",
                    genes.unwrap_or_default()
                ));
                self.after_population_change();
                answer
            }
            Err(e) => self.refuse(format!("mutate {id}: {e}")),
        }
    }

    fn inject(&mut self, genes: Vec<String>) -> Answer {
        let list = match GeneList::parse_args(&genes) {
            Ok(list) => list,
            Err(e) => return self.refuse(format!("inject: {e}")),
        };
        match self.search.inject(&list) {
            Ok(id) => {
                let answer = self.say(format!("injected #{id}: {list}"));
                self.after_population_change();
                answer
            }
            Err(e) => self.refuse(format!("inject {list}: {e}")),
        }
    }

    fn after_population_change(&mut self) {
        let event = Event::Generation {
            generation: self.search.state.generation,
            members: self.search.state.population.clone(),
        };
        self.emit(event);
        self.checkpoint();
    }

    fn export(&mut self, top: usize, dir: Option<String>) -> Answer {
        let dir = dir
            .map(PathBuf::from)
            .unwrap_or_else(|| self.run.file("export"));
        match export::export_top(
            &self.search.state,
            &self.search.problem.space,
            self.run.path(),
            top,
            &dir,
        ) {
            Ok(count) => {
                self.emit(Event::Exported {
                    dir: dir.display().to_string(),
                    count,
                });
                self.say(format!(
                    "exported {} to {}",
                    crate::format::plural(count, "architecture"),
                    dir.display()
                ))
            }
            Err(e) => {
                let message = format!("export failed: {e:#}");
                self.log("error", message.clone());
                Answer::no(message)
            }
        }
    }
}
