//! The dashboard's state: the run as its events tell it (a [`RunView`],
//! shared with the headless printer and `attach`) plus UI state (selection,
//! focus, overlays, typed input). Key handling is a pure function of this
//! state returning an [`Action`], so it is tested without a terminal.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::keys::{action_of, KeyAction};
use super::look::{Look, Tone};
use super::validate::check_genes;
use crate::engine::run_view::{ended_member, RunInfo, RunState, RunView};
use crate::engine::{Command, Event};
use crate::search::{Member, Problem, Status};
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
            Event::Finished { .. } => {
                self.clamp_selection();
                // Prompts that would steer the ended search make no sense now.
                self.overlay = match self.overlay.take() {
                    Some(o @ (Overlay::Help | Overlay::Detail)) => Some(o),
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
            Status::Pending => match self.view.live.get(&m.id) {
                Some(l) if l.training => {
                    let pct = (l.step * 100).checked_div(l.steps).unwrap_or(0);
                    (format!("train {pct}%"), Tone::Training)
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

    /// Handles one key press; returns what the event loop must do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        self.flash = None;
        if self.overlay.is_some() {
            return self.overlay_key(key);
        }
        match action_of(&key)? {
            KeyAction::Quit => self.quit_key(),
            KeyAction::Help => {
                self.overlay = Some(Overlay::Help);
                None
            }
            KeyAction::NextPane => {
                self.focus = match self.focus {
                    Pane::Population => Pane::Elites,
                    Pane::Elites => Pane::Log,
                    Pane::Log => Pane::Population,
                };
                None
            }
            KeyAction::PreviousPane => {
                self.focus = match self.focus {
                    Pane::Population => Pane::Log,
                    Pane::Elites => Pane::Population,
                    Pane::Log => Pane::Elites,
                };
                None
            }
            KeyAction::Select(delta) => self.move_selection(delta),
            KeyAction::Detail => {
                if self.selected_member().is_some() {
                    self.overlay = Some(Overlay::Detail);
                } else {
                    self.flash = Some("no member to show yet".into());
                }
                None
            }
            KeyAction::PauseResume => {
                if !self.can_steer() {
                    return None;
                }
                let command = if self.view.paused() {
                    Command::Resume
                } else {
                    Command::Pause
                };
                self.send(command)
            }
            KeyAction::Kill => {
                let id = self.target("kill", false)?;
                self.overlay = Some(Overlay::ConfirmKill { id });
                None
            }
            KeyAction::Mutate => {
                let id = self.target("mutate", true)?;
                self.send(Command::Mutate { id, genes: None })
            }
            KeyAction::Inject => {
                if self.can_steer() {
                    self.overlay = Some(Overlay::Inject(Input::default()));
                }
                None
            }
            KeyAction::Export => {
                if self.can_steer() {
                    let n = if self.view.elites.is_empty() {
                        self.problem.policy.num_elitism
                    } else {
                        self.view.elites.len()
                    };
                    self.overlay = Some(Overlay::Export(Input {
                        text: n.max(1).to_string(),
                        error: None,
                    }));
                }
                None
            }
            KeyAction::Close => None,
        }
    }

    fn quit_key(&mut self) -> Option<Action> {
        match self.view.state() {
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
        let why = match self.view.state() {
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
        let Some(m) = self.view.population.get(self.pop_selected) else {
            self.flash = Some("no member selected".into());
            return None;
        };
        let (label, _) = self.member_state(m);
        let training = self.view.live.get(&m.id).is_some_and(|l| l.training);
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
        self.view.note("you", what.clone());
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
            Pane::Population => {
                self.pop_selected = step(self.pop_selected, self.view.population.len())
            }
            Pane::Elites => self.elite_selected = step(self.elite_selected, self.view.elites.len()),
            // Up scrolls back in time.
            Pane::Log => {
                let max = self.view.log.len().saturating_sub(1) as isize;
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
                    self.view.stopping();
                    self.stop_requested = true;
                    self.view
                        .note("you", "stop the search (checkpoint, resumable)");
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
