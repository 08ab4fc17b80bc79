//! The dashboard's keys, each declared once: what it does, how the footer
//! shows it and how the `?` help explains it. Key handling, footer and help
//! all read [`BINDINGS`], so they cannot drift apart. (Prompts and
//! confirmations take their own keys, named in their windows.)

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::Mode;

/// What a key asks of the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Move the selection by this many rows (clamped to the table).
    Select(isize),
    /// Focus the next pane.
    NextPane,
    /// Focus the previous pane.
    PreviousPane,
    /// Open the selected member's details.
    Detail,
    /// Pause, or resume when paused.
    PauseResume,
    /// Kill the selected member (asks first).
    Kill,
    /// Mutate the selected queued member.
    Mutate,
    /// Type a gene list to inject.
    Inject,
    /// Type how many of the best to export.
    Export,
    /// Quit (asks what to do with the search first).
    Quit,
    /// Close a window or prompt (on the main screen nothing is open).
    Close,
    /// Open the key list.
    Help,
}

/// When the footer shows a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Always.
    Always,
    /// While the run can be steered (the search or a stage after it).
    WhileLive,
    /// While the search itself runs: its members can be steered.
    WhileSearching,
    /// While the search's tables are on screen (not once a stage after the
    /// search shows its finalists instead).
    WithTables,
    /// With the search's tables, once the run has ended (steering keys make
    /// room for it).
    WithTablesWhenEnded,
}

/// What the dashboard shows and what can still be steered: which keys apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// The run takes commands (it has not finished, stopped or gone).
    pub live: bool,
    /// The search's tables are shown: no stage after the search has started.
    pub search: bool,
}

impl Stage {
    /// The search running.
    pub const SEARCHING: Stage = Stage {
        live: true,
        search: true,
    };

    /// True when a key shown `shown` applies in this stage.
    pub fn offers(self, shown: Shown) -> bool {
        match shown {
            Shown::Always => true,
            Shown::WhileLive => self.live,
            Shown::WhileSearching => self.live && self.search,
            Shown::WithTables => self.search,
            Shown::WithTablesWhenEnded => self.search && !self.live,
        }
    }
}

/// A key in the footer: its place, label and word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FooterKey {
    /// Position in the footer, left to right.
    pub rank: u8,
    /// The key as shown (`q`, `Tab`).
    pub label: &'static str,
    /// What it does, in a word.
    pub word: &'static str,
    /// When it is shown.
    pub shown: Shown,
}

/// One binding of the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The key presses.
    pub keys: &'static [Key],
    /// What they do.
    pub action: KeyAction,
    /// The help's line: the keys as it names them, and what they do (`None`:
    /// explained by another binding's line, like Down by Up's).
    pub help: Option<(&'static str, &'static str)>,
    /// How the footer shows it, if it does.
    pub footer: Option<FooterKey>,
}

/// A key press as a binding names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// This key, whatever the modifiers (Shift, or a Ctrl nothing else takes).
    Code(KeyCode),
    /// Ctrl and this letter.
    Ctrl(char),
}

impl Key {
    fn matches(&self, key: &KeyEvent) -> bool {
        match *self {
            Key::Code(code) => key.code == code,
            Key::Ctrl(c) => {
                key.code == KeyCode::Char(c) && key.modifiers.contains(KeyModifiers::CONTROL)
            }
        }
    }
}

/// Every binding of the main screen, in the help's order.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::Code(KeyCode::Up), Key::Code(KeyCode::Char('k'))],
        action: KeyAction::Select(-1),
        help: Some(("Up/Down j/k", "select a row (PgUp/PgDn, Home/End)")),
        footer: Some(FooterKey {
            rank: 7,
            label: "j/k",
            word: "select",
            shown: Shown::WithTablesWhenEnded,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::Down), Key::Code(KeyCode::Char('j'))],
        action: KeyAction::Select(1),
        help: None,
        footer: None,
    },
    Binding {
        keys: &[Key::Code(KeyCode::PageUp)],
        action: KeyAction::Select(-10),
        help: None,
        footer: None,
    },
    Binding {
        keys: &[Key::Code(KeyCode::PageDown)],
        action: KeyAction::Select(10),
        help: None,
        footer: None,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Home)],
        action: KeyAction::Select(isize::MIN / 2),
        help: None,
        footer: None,
    },
    Binding {
        keys: &[Key::Code(KeyCode::End)],
        action: KeyAction::Select(isize::MAX / 2),
        help: None,
        footer: None,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Tab)],
        action: KeyAction::NextPane,
        help: Some(("Tab", "next pane: population, elites, log")),
        footer: Some(FooterKey {
            rank: 6,
            label: "Tab",
            word: "pane",
            shown: Shown::WithTables,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::BackTab)],
        action: KeyAction::PreviousPane,
        help: None,
        footer: None,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Enter)],
        action: KeyAction::Detail,
        help: Some(("Enter", "details of the selected member")),
        footer: Some(FooterKey {
            rank: 8,
            label: "Enter",
            word: "detail",
            shown: Shown::WithTables,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::Char('p'))],
        action: KeyAction::PauseResume,
        help: Some(("p", "pause / resume (training in flight finishes)")),
        footer: Some(FooterKey {
            rank: 1,
            label: "p",
            word: "pause",
            shown: Shown::WhileLive,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::Char('x'))],
        action: KeyAction::Kill,
        help: Some(("x", "kill the selected member (asks first)")),
        footer: Some(FooterKey {
            rank: 2,
            label: "x",
            word: "kill",
            shown: Shown::WhileSearching,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::Char('m'))],
        action: KeyAction::Mutate,
        help: Some(("m", "mutate the selected queued member")),
        footer: Some(FooterKey {
            rank: 3,
            label: "m",
            word: "mutate",
            shown: Shown::WhileSearching,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::Char('i'))],
        action: KeyAction::Inject,
        help: Some(("i", "inject a gene list (checked before sending)")),
        footer: Some(FooterKey {
            rank: 4,
            label: "i",
            word: "inject",
            shown: Shown::WhileSearching,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::Char('e'))],
        action: KeyAction::Export,
        help: Some(("e", "export the best N with their weights")),
        footer: Some(FooterKey {
            rank: 5,
            label: "e",
            word: "export",
            shown: Shown::WhileSearching,
        }),
    },
    Binding {
        keys: &[Key::Ctrl('c'), Key::Code(KeyCode::Char('q'))],
        action: KeyAction::Quit,
        // The text is `quit_help`'s, which depends on the mode.
        help: Some(("q", "quit")),
        footer: Some(FooterKey {
            rank: 0,
            label: "q",
            word: "quit",
            shown: Shown::Always,
        }),
    },
    Binding {
        keys: &[Key::Code(KeyCode::Esc)],
        action: KeyAction::Close,
        help: Some(("Esc", "close this window or a prompt")),
        footer: None,
    },
    Binding {
        keys: &[Key::Code(KeyCode::Char('?'))],
        action: KeyAction::Help,
        help: Some(("?", "this help")),
        footer: Some(FooterKey {
            rank: 9,
            label: "?",
            word: "help",
            shown: Shown::Always,
        }),
    },
];

/// What a key press means on the main screen, if anything.
/// Ctrl bindings are tried first, so Ctrl-c quits while a plain `c` does nothing.
pub fn action_of(key: &KeyEvent) -> Option<KeyAction> {
    let bound = |ctrl: bool| {
        BINDINGS.iter().find(|b| {
            b.keys
                .iter()
                .any(|k| matches!(k, Key::Ctrl(_)) == ctrl && k.matches(key))
        })
    };
    bound(true).or_else(|| bound(false)).map(|b| b.action)
}

/// The help's lines, `(keys, what they do)`, for a dashboard in `mode`.
pub fn help_lines(mode: Mode) -> Vec<(&'static str, &'static str)> {
    BINDINGS
        .iter()
        .filter_map(|b| match (b.action, b.help) {
            (KeyAction::Quit, Some((keys, _))) => Some((keys, quit_help(mode))),
            (_, help) => help,
        })
        .collect()
}

fn quit_help(mode: Mode) -> &'static str {
    match mode {
        Mode::InProcess => "quit: asks to stop the search (it stays resumable)",
        Mode::Attached => "quit: stop the search, or leave it running",
    }
}

/// How a binding's key is shown, for one that the footer does not list
/// (Down like Up, BackTab like Tab, Esc always).
fn shown_of(action: KeyAction) -> Shown {
    BINDINGS
        .iter()
        .filter(|b| std::mem::discriminant(&b.action) == std::mem::discriminant(&action))
        .find_map(|b| b.footer.map(|f| f.shown))
        .map(|shown| match shown {
            // j/k leave the footer while live for room, not because they stop working.
            Shown::WithTablesWhenEnded => Shown::WithTables,
            other => other,
        })
        .unwrap_or(match action {
            KeyAction::PreviousPane => Shown::WithTables,
            _ => Shown::Always,
        })
}

/// True when `action` applies in `stage` (the footer offers exactly these).
pub fn applies(action: KeyAction, stage: Stage) -> bool {
    stage.offers(shown_of(action))
}

/// The footer's keys, `(label, word)` left to right: those that apply in
/// `stage`; "resume" for `p` while `paused`.
pub fn footer_keys(stage: Stage, paused: bool) -> Vec<(&'static str, &'static str)> {
    let mut keys: Vec<(FooterKey, KeyAction)> = BINDINGS
        .iter()
        .filter_map(|b| b.footer.map(|f| (f, b.action)))
        .filter(|(f, _)| stage.offers(f.shown))
        .collect();
    keys.sort_by_key(|(f, _)| f.rank);
    keys.into_iter()
        .map(|(f, action)| match action {
            KeyAction::PauseResume if paused => (f.label, "resume"),
            _ => (f.label, f.word),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        let mut seen = Vec::new();
        for b in BINDINGS {
            for k in b.keys {
                assert!(!seen.contains(k), "{k:?} is bound twice");
                seen.push(*k);
            }
        }
    }

    #[test]
    fn footer_keys_are_bound_and_shown_in_the_help() {
        let help = help_lines(Mode::InProcess);
        for live in [true, false] {
            for (label, _) in footer_keys(Stage { live, search: true }, false) {
                assert!(
                    help.iter()
                        .any(|(keys, _)| keys.contains(label.split('/').next().unwrap())),
                    "{label} is in the footer but not in the help"
                );
            }
        }
        assert_eq!(
            footer_keys(Stage::SEARCHING, true)[..2],
            [("q", "quit"), ("p", "resume")]
        );
        assert_eq!(
            footer_keys(
                Stage {
                    live: false,
                    search: true
                },
                false
            ),
            [
                ("q", "quit"),
                ("Tab", "pane"),
                ("j/k", "select"),
                ("Enter", "detail"),
                ("?", "help")
            ]
        );
    }

    #[test]
    fn ctrl_c_quits_but_a_plain_c_does_nothing() {
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action_of(&ctrl_c), Some(KeyAction::Quit));
        let c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(action_of(&c), None);
    }
}
