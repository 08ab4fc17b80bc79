//! How the dashboard looks: colours (or none, for `NO_COLOR`) and glyphs
//! (line drawing, or plain ASCII where the locale is not UTF-8).

use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier, Style};

use crate::space::BlockKind;

/// Which characters the dashboard may draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glyphs {
    /// Box-drawing borders and `•` chart points (UTF-8 terminals).
    Unicode,
    /// Only printable ASCII: every other symbol is replaced after drawing.
    Ascii,
}

/// Colours and glyphs, chosen once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// False when `NO_COLOR` is set: styles use bold/reversed/underline only.
    pub colors: bool,
    /// Which characters may be drawn.
    pub glyphs: Glyphs,
}

impl Default for Look {
    fn default() -> Self {
        Look {
            colors: true,
            glyphs: Glyphs::Unicode,
        }
    }
}

/// What a member's row shows in its state column; decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Waiting for a worker.
    Queued,
    /// Being trained now.
    Training,
    /// Trained and validated.
    Done,
    /// Reused a cached result.
    Cached,
    /// Training failed.
    Failed,
    /// Stopped by hand.
    Killed,
    /// Made or changed by hand and still waiting.
    HandMade,
}

impl Look {
    /// Reads `NO_COLOR` (any non-empty value, see no-color.org) and the locale
    /// (`LC_ALL`, then `LC_CTYPE`, then `LANG`; see [`glyphs_for_locale`]).
    pub fn from_env() -> Look {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let colors = var("NO_COLOR").is_none();
        let locale = var("LC_ALL")
            .or_else(|| var("LC_CTYPE"))
            .or_else(|| var("LANG"))
            .unwrap_or_default();
        Look {
            colors,
            glyphs: glyphs_for_locale(&locale),
        }
    }

    /// A foreground colour, or nothing without colours.
    pub fn fg(&self, color: Color) -> Style {
        if self.colors {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// The style of a block kind's gene text: S cyan, G green, C magenta;
    /// without colours the letters alone tell them apart.
    pub fn kind(&self, kind: BlockKind) -> Style {
        self.fg(match kind {
            BlockKind::S => Color::Cyan,
            BlockKind::G => Color::Green,
            BlockKind::C => Color::Magenta,
        })
    }

    /// The style of a state label; failures stay visible without colours (bold).
    pub fn tone(&self, tone: Tone) -> Style {
        if !self.colors {
            return match tone {
                Tone::Training => Style::new().add_modifier(Modifier::BOLD),
                Tone::Failed => Style::new().add_modifier(Modifier::BOLD),
                _ => Style::new(),
            };
        }
        Style::new().fg(match tone {
            Tone::Queued => Color::Gray,
            Tone::Training => Color::Yellow,
            Tone::Done => Color::Green,
            Tone::Cached => Color::Blue,
            Tone::Failed => Color::Red,
            Tone::Killed => Color::DarkGray,
            Tone::HandMade => Color::Magenta,
        })
    }

    /// A log line's style by level (`info`, `warn`, `error`, `you`).
    pub fn level(&self, level: &str) -> Style {
        match level {
            "error" => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            "warn" => self.fg(Color::Yellow),
            "you" => self.fg(Color::Cyan),
            _ => Style::new(),
        }
    }

    /// Borders: bold when the pane has the focus.
    pub fn border(&self, focused: bool) -> Style {
        if focused {
            self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            self.fg(Color::DarkGray)
        }
    }

    /// The selected table row: reversed works on every terminal.
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Keys in the footer and help.
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Dim text (labels, placeholders).
    pub fn dim(&self) -> Style {
        if self.colors {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// An inline error (validation feedback).
    pub fn error(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    /// Emphasis for good news (best fitness, running state).
    pub fn good(&self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }

    /// Emphasis for attention (paused, stopping).
    pub fn attention(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
}

/// Line drawing only when the locale says UTF-8 (`en_US.UTF-8`, `C.utf8`);
/// `C`, `POSIX`, other charsets and an unset locale get ASCII, because tmux
/// and some SSH setups then mangle anything else.
pub fn glyphs_for_locale(locale: &str) -> Glyphs {
    let l = locale.to_ascii_lowercase();
    if l.contains("utf-8") || l.contains("utf8") {
        Glyphs::Unicode
    } else {
        Glyphs::Ascii
    }
}

/// Replaces every non-ASCII symbol in the buffer with an ASCII look-alike
/// (box lines, chart points, gauge blocks), `?` for anything else.
pub fn asciify(buf: &mut Buffer) {
    for cell in buf.content.iter_mut() {
        let symbol = cell.symbol();
        if symbol.is_ascii() {
            continue;
        }
        let ascii = match symbol.chars().next().unwrap_or(' ') {
            '─' | '━' | '═' | '╌' | '┄' => "-",
            '│' | '┃' | '║' | '╎' | '┆' => "|",
            '┌' | '┐' | '└' | '┘' | '├' | '┤' | '┬' | '┴' | '┼' | '╭' | '╮' | '╯' | '╰' | '┏'
            | '┓' | '┗' | '┛' | '╔' | '╗' | '╚' | '╝' => "+",
            '•' | '·' | '⠁'..='⣿' => "*",
            '█' | '▉' | '▊' | '▋' | '▌' | '▍' | '▎' | '▏' | '▓' | '▒' | '░' => {
                "#"
            }
            '▄' | '▀' | '▁' | '▂' | '▃' | '▅' | '▆' | '▇' => "#",
            '…' => ".",
            '→' => ">",
            _ => "?",
        };
        cell.set_symbol(ascii);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;

    #[test]
    fn no_colour_means_no_colour() {
        let look = Look {
            colors: false,
            glyphs: Glyphs::Unicode,
        };
        for kind in BlockKind::ALL {
            assert_eq!(look.kind(kind).fg, None);
        }
        for tone in [Tone::Queued, Tone::Training, Tone::Failed, Tone::HandMade] {
            assert_eq!(look.tone(tone).fg, None);
            assert_eq!(look.tone(tone).bg, None);
        }
        assert_eq!(look.error().fg, None);
        assert!(Look::default().kind(BlockKind::S).fg.is_some());
    }

    #[test]
    fn locales_pick_glyphs() {
        assert_eq!(glyphs_for_locale("en_US.UTF-8"), Glyphs::Unicode);
        assert_eq!(glyphs_for_locale("C.utf8"), Glyphs::Unicode);
        assert_eq!(glyphs_for_locale(""), Glyphs::Ascii);
        assert_eq!(glyphs_for_locale("C"), Glyphs::Ascii);
        assert_eq!(glyphs_for_locale("POSIX"), Glyphs::Ascii);
        assert_eq!(glyphs_for_locale("de_DE.ISO-8859-1"), Glyphs::Ascii);
    }

    #[test]
    fn asciify_leaves_only_ascii() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 1));
        for (i, s) in ["┌", "─", "•", "█", "é", "a"].iter().enumerate() {
            buf[(i as u16, 0)].set_symbol(s);
        }
        asciify(&mut buf);
        let text: String = buf.content.iter().map(|c| c.symbol()).collect();
        assert_eq!(text, "+-*#?a");
    }
}
