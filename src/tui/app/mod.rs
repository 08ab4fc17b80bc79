//! The dashboard's state: the run as its events tell it (a [`RunView`],
//! shared with the headless printer and `attach`) plus UI state (selection,
//! focus, overlays, typed input). Key handling is a pure function of this
//! state returning an [`Action`] (`on_key.rs`), so it is tested without a
//! terminal.

mod on_key;

use std::path::PathBuf;

use super::look::{Look, Tone};
use crate::engine::run_view::{ended_member, RunInfo, RunView};
use crate::engine::{Command, Event};
use crate::search::{Member, Problem, Status};

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
    /// What is wrong with it: checked as it is typed where the prompt can
    /// tell (inject), else when Enter was refused.
    pub error: Option<String>,
    /// True when Enter was pressed on this text and refused (nothing sent).
    pub refused: bool,
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

/// The dashboard's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// The search's fixed part: space and budget (for inject validation, block costs).
    pub problem: Problem,
    /// In-process or attached.
    pub mode: Mode,
    /// Colours and glyphs.
    pub look: Look,
    /// The run as its events tell it.
    pub view: RunView,
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
    /// How many architectures this dashboard asked to export, until the
    /// engine answers (other viewers' exports and replayed ones only log).
    export_asked: Option<usize>,
    stop_requested: bool,
}

impl App {
    /// A dashboard for a search of `problem`, before any event.
    pub fn new(problem: Problem, mode: Mode) -> App {
        App {
            view: RunView::new(RunInfo::planned(&problem)),
            problem,
            mode,
            look: Look::from_env(),
            flash: None,
            focus: Pane::Population,
            pop_selected: 0,
            elite_selected: 0,
            log_scroll: 0,
            overlay: None,
            export_asked: None,
            stop_requested: false,
        }
    }

    /// The same dashboard with other colours/glyphs (tests, `NO_COLOR`).
    pub fn with_look(mut self, look: Look) -> App {
        self.look = look;
        self
    }

    /// The same dashboard, told where the run directory is (named in the
    /// quit and export prompts instead of a placeholder).
    pub fn with_run_dir(mut self, dir: impl Into<PathBuf>) -> App {
        self.view.run_dir = Some(dir.into());
        self
    }

    /// True once the user confirmed stopping the search here.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested
    }

    /// Updates the run view with one engine event, and the selection and
    /// prompts with what it changed.
    pub fn apply(&mut self, event: &Event) {
        let selected = self.view.population.get(self.pop_selected).map(|m| m.id);
        let new_generation = matches!(event, Event::Generation { generation, .. }
            if self.view.is_new_generation(*generation));
        self.view.apply(event);
        if let Some((id, status)) = ended_member(event) {
            if self.overlay == Some(Overlay::ConfirmKill { id }) {
                self.overlay = None;
                self.flash = Some(format!(
                    "#{id} ended meanwhile ({}): nothing to kill",
                    status.name()
                ));
            }
        }
        match event {
            Event::Generation { .. } => {
                self.pop_selected = if new_generation {
                    0
                } else {
                    selected
                        .and_then(|id| self.view.population.iter().position(|m| m.id == id))
                        .unwrap_or(self.pop_selected)
                };
                self.clamp_selection();
            }
            Event::GenerationDone { .. } => self.clamp_selection(),
            Event::StageStarted { stage, .. } if stage != "search" => {
                // The finalists replace the search's tables: a prompt or a
                // member's details opened during the search would act on
                // (or show) what is no longer on screen.
                let open = self.overlay.take();
                self.overlay = match open {
                    Some(o @ (Overlay::Help | Overlay::ConfirmQuit)) => Some(o),
                    Some(Overlay::Inject(_) | Overlay::Export(_) | Overlay::ConfirmKill { .. }) => {
                        self.flash = Some(format!(
                            "the search is over ({stage} runs now): the prompt was closed, nothing sent"
                        ));
                        None
                    }
                    _ => None,
                };
            }
            Event::Finished { .. } => {
                self.clamp_selection();
                // Prompts that would steer the ended search make no sense now.
                self.overlay = match self.overlay.take() {
                    Some(o @ (Overlay::Help | Overlay::Detail)) => Some(o),
                    Some(Overlay::Inject(_) | Overlay::Export(_) | Overlay::ConfirmKill { .. }) => {
                        self.flash = Some(
                            "the search has ended: the prompt was closed, nothing sent".into(),
                        );
                        None
                    }
                    _ => None,
                };
            }
            // A failed export has no event of its own: answer the request here.
            Event::Log { level, message }
                if level == "error"
                    && message.starts_with("export failed")
                    && self.export_asked.take().is_some() =>
            {
                self.flash = Some(message.clone());
            }
            // The engine logs every export; the footer answers only this
            // dashboard's own request, not replayed or other viewers' ones.
            Event::Exported { dir, count } => {
                if let Some(asked) = self.export_asked.take() {
                    self.flash = Some(export_reply(*count, asked, dir));
                }
            }
            _ => {}
        }
    }

    fn clamp_selection(&mut self) {
        let view = &self.view;
        self.pop_selected = self
            .pop_selected
            .min(view.population.len().saturating_sub(1));
        self.elite_selected = self.elite_selected.min(view.elites.len().saturating_sub(1));
    }

    /// The member the detail pane shows: the selected elite when the elites
    /// have the focus, else the selected population member.
    pub fn selected_member(&self) -> Option<&Member> {
        match self.focus {
            Pane::Elites => self.view.elites.get(self.elite_selected),
            _ => self.view.population.get(self.pop_selected),
        }
    }

    /// A member's display state, its label and tone (`train 45%`, `hand-made`, …).
    pub fn member_state(&self, m: &Member) -> (String, Tone) {
        match &m.status {
            Status::Pending | Status::Promoted(_) => match self.view.live.get(&m.id) {
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
                _ if matches!(m.status, Status::Promoted(_)) => ("promoted".into(), Tone::Queued),
                _ if m.origin.is_hand_made() => ("hand-made".into(), Tone::HandMade),
                _ => ("queued".into(), Tone::Queued),
            },
            Status::Waiting(r) => (format!("wait @{}", r.step), Tone::Queued),
            Status::Evaluated(_) => ("done".into(), Tone::Done),
            Status::Cached(_) => ("cached".into(), Tone::Cached),
            Status::Failed { .. } => ("failed".into(), Tone::Failed),
            Status::Killed => ("killed".into(), Tone::Killed),
            Status::Stopped(_) => ("stopped".into(), Tone::Killed),
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
