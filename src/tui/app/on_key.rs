//! Key handling: what a key press does to the dashboard's state and what
//! it asks of the event loop. The main screen's keys come from
//! [`BINDINGS`](crate::tui::keys::BINDINGS); an open window takes every key.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{Action, App, Input, Mode, Overlay, Pane};
use crate::engine::run_view::RunState;
use crate::engine::Command;
use crate::tui::keys::{action_of, applies, KeyAction, Stage};
use crate::tui::validate::check_genes;

/// Longest gene list text accepted in the inject prompt.
const MAX_INPUT: usize = 2000;

impl App {
    /// Handles one key press; returns what the event loop must do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        self.flash = None;
        if self.overlay.is_some() {
            return self.overlay_key(key);
        }
        let action = action_of(&key)?;
        if self.refused_in_stage(action) {
            return None;
        }
        match action {
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
                        ..Input::default()
                    }));
                }
                None
            }
            KeyAction::Close => None,
        }
    }

    fn confirm_quit(&mut self) -> Option<Action> {
        self.view.stopping();
        self.stop_requested = true;
        self.view
            .note("you", "stop the search (checkpoint, resumable)");
        Some(Action::Quit { stop_search: true })
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

    /// What the dashboard shows now and whether the run takes commands.
    pub fn stage(&self) -> Stage {
        Stage {
            live: !matches!(
                self.view.state(),
                RunState::Finished | RunState::Stopped | RunState::Gone
            ),
            search: !self.view.stages.after_search(),
        }
    }

    /// True (with the reason in the footer) when `action` does not apply
    /// to what is on screen: once the search is over, its members can no
    /// longer be steered, and the finalists' screen has no tables to move in.
    /// An ended run's steering keys are left to [`App::can_steer`], which
    /// says how it ended.
    fn refused_in_stage(&mut self, action: KeyAction) -> bool {
        let stage = self.stage();
        if applies(action, stage) {
            return false;
        }
        let now = self
            .view
            .stages
            .current
            .clone()
            .unwrap_or_else(|| "a later stage".into());
        let over = format!("the search is over ({now} runs now)");
        let why = match action {
            KeyAction::Kill if stage.live => {
                format!("{over}: its members can no longer be killed; p pauses, q quits")
            }
            KeyAction::Mutate if stage.live => {
                format!("{over}: its members can no longer be mutated; p pauses, q quits")
            }
            KeyAction::Inject if stage.live => {
                format!("{over}: nothing can be injected; p pauses, q quits")
            }
            KeyAction::Export if stage.live => format!(
                "{over}: its best are in export/; esr-ea export --run {} picks another count",
                self.view.run_dir_text()
            ),
            KeyAction::Select(_)
            | KeyAction::NextPane
            | KeyAction::PreviousPane
            | KeyAction::Detail
                if !stage.search =>
            {
                format!(
                    "{now} shows the finalists, not the search's tables: Tab, j/k and Enter apply during the search"
                )
            }
            _ => return false,
        };
        self.flash = Some(why);
        true
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
        // The same check `esr-ea control` makes before it sends.
        let id = m.id;
        let command = if queued_only {
            Command::Mutate { id, genes: None }
        } else {
            Command::Kill { id }
        };
        if let Some(why) = self.view.refusal(&command) {
            self.flash = Some(why);
            return None;
        }
        Some(id)
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
            // A second Ctrl-C confirms, as the README says ("Ctrl-C checkpoints and stops").
            Overlay::ConfirmQuit if ctrl && key.code == KeyCode::Char('c') => self.confirm_quit(),
            Overlay::ConfirmQuit => match (key.code, self.mode) {
                (KeyCode::Char('y') | KeyCode::Char('Y'), _) => self.confirm_quit(),
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
                        input.refused = true;
                        self.overlay = Some(Overlay::Inject(input));
                        None
                    }
                },
                _ => {
                    if edit(&mut input, key.code, ctrl) {
                        // Checked as typed, as the README promises: the
                        // problem shows before Enter is pressed.
                        input.error = if input.text.trim().is_empty() {
                            None
                        } else {
                            check_genes(&self.problem, &input.text).err()
                        };
                    }
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
                        input.refused = true;
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

/// Line editing for prompts: type, Backspace, Ctrl-U clears. Any edit
/// clears the previous error; returns true when the text changed.
fn edit(input: &mut Input, code: KeyCode, ctrl: bool) -> bool {
    match code {
        KeyCode::Char('u') if ctrl => input.text.clear(),
        KeyCode::Char(_) if ctrl => return false,
        KeyCode::Char(c) if input.text.len() < MAX_INPUT && (c.is_ascii_graphic() || c == ' ') => {
            input.text.push(c)
        }
        KeyCode::Backspace => {
            input.text.pop();
        }
        _ => return false,
    }
    input.error = None;
    input.refused = false;
    true
}
