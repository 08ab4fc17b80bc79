//! Small pieces the panes share: coloured gene lists, the budget gauge,
//! wrapped text, pane frames and placeholders.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph};
use ratatui::Frame;

use crate::search::{Member, Origin};
use crate::space::GeneList;
use crate::tui::format::{budget_percent, short};
use crate::tui::look::Look;

pub(super) fn pane_block<'a>(title: impl Into<Line<'a>>, focused: bool, look: &Look) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Plain)
        .border_style(look.border(focused))
        .title(title)
}

/// A gene list as coloured spans within `width` columns: whole genes in
/// order, then `+N` for those that do not fit.
pub fn gene_spans(genes: &GeneList, width: usize, look: &Look) -> Vec<Span<'static>> {
    let total = genes.len();
    if total == 0 {
        return vec![Span::styled("(no blocks)", look.dim())];
    }
    let mut spans = Vec::new();
    let mut used = 0;
    for (i, gene) in genes.iter().enumerate() {
        let text = gene.to_string();
        let sep = usize::from(i > 0);
        let left_after = total - i - 1;
        let suffix = if left_after > 0 {
            2 + left_after.to_string().len()
        } else {
            0
        };
        if used + sep + text.len() + suffix > width {
            let more = format!("+{}", total - i);
            if i == 0 {
                // Not even one gene fits: show what does.
                let cut: String = text
                    .chars()
                    .take(width.saturating_sub(more.len() + 1))
                    .collect();
                spans.push(Span::styled(cut, look.kind(gene.kind)));
            }
            if used + 1 + more.len() <= width || i == 0 {
                spans.push(Span::styled(format!(" {more}"), look.dim()));
            }
            return spans;
        }
        if sep == 1 {
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(text.clone(), look.kind(gene.kind)));
        used += sep + text.len();
    }
    spans
}

/// `min [=====|.....] max`: where `params` lies in the budget.
pub fn budget_gauge(params: u64, min: u64, max: u64, width: usize, look: &Look) -> Line<'static> {
    let left = short(min);
    let right = short(max);
    let bar = width.saturating_sub(left.len() + right.len() + 4).max(3);
    let pct = budget_percent(params, min, max);
    let inside = (min..=max).contains(&params);
    let pos = ((pct / 100.0) * (bar - 1) as f64)
        .round()
        .clamp(0.0, (bar - 1) as f64) as usize;
    let mut cells = String::with_capacity(bar);
    for i in 0..bar {
        cells.push(if i == pos {
            if !inside && params < min {
                '<'
            } else if !inside {
                '>'
            } else {
                '|'
            }
        } else if i < pos {
            '='
        } else {
            '.'
        });
    }
    let bar_style = if inside { look.good() } else { look.error() };
    Line::from(vec![
        Span::styled(left, look.dim()),
        Span::raw(" ["),
        Span::styled(cells, bar_style),
        Span::raw("] "),
        Span::styled(right, look.dim()),
    ])
}

pub(super) fn id_text(m: &Member) -> String {
    let mark = if m.origin.is_hand_made() { "*" } else { "" };
    format!("#{}{mark}", m.id)
}

pub(super) fn selection_style(look: &Look, focused: bool) -> Style {
    if focused {
        look.selected()
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

pub(super) fn placeholder(frame: &mut Frame, area: Rect, text: &str, look: &Look) {
    if area.height < 4 || area.width < 4 {
        return;
    }
    let inner = Rect::new(area.x + 2, area.y + 2, area.width - 4, 1);
    frame.render_widget(
        Paragraph::new(Span::styled(text.to_string(), look.dim())),
        inner,
    );
}

pub(super) fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::Initial => "random".into(),
        Origin::Mutation { parent } => format!("mutation of #{parent}"),
        Origin::Crossover { parents } => format!("crossover of #{} x #{}", parents[0], parents[1]),
        Origin::Injected => "injected".into(),
        Origin::HandMutated { was } => format!("hand-mutated ({})", origin_text(was)),
    }
}

/// Splits `text` into rows of at most `width` characters, at spaces where
/// possible; rows after the first start with `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let width = width.max(indent.len() + 8);
    let mut rows = Vec::new();
    let mut row = String::new();
    for word in text.split(' ') {
        let sep = usize::from(!row.trim().is_empty());
        if row.chars().count() + sep + word.chars().count() > width && !row.trim().is_empty() {
            rows.push(std::mem::take(&mut row));
            row.push_str(indent);
        } else if sep == 1 {
            row.push(' ');
        }
        // A word longer than a row is cut into pieces.
        let mut rest: Vec<char> = word.chars().collect();
        while row.chars().count() + rest.len() > width {
            let take = width - row.chars().count();
            row.extend(rest.drain(..take));
            rows.push(std::mem::take(&mut row));
            row.push_str(indent);
        }
        row.extend(rest);
    }
    if !row.trim().is_empty() || rows.is_empty() {
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::GeneList;

    #[test]
    fn genes_truncate_to_whole_genes_and_a_count() {
        let look = Look::default();
        let genes = GeneList::parse_args(&["S_4_16_24 G_8_16_24 C_4_16_16 S_6_24_24"]).unwrap();
        let text = |w| -> String {
            gene_spans(&genes, w, &look)
                .iter()
                .map(|s| s.content.to_string())
                .collect()
        };
        assert_eq!(text(80), "S_4_16_24 G_8_16_24 C_4_16_16 S_6_24_24");
        assert_eq!(text(24), "S_4_16_24 G_8_16_24 +2");
        assert!(text(24).len() <= 24);
        assert_eq!(text(12), "S_4_16_24 +3");
        for w in 4..60 {
            assert!(text(w).len() <= w.max(6), "{w}: {}", text(w));
        }
    }

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("short", 20, "  "), vec!["short"]);
        assert_eq!(
            wrap("one two three four", 10, "  "),
            vec!["one two", "  three", "  four"]
        );
        assert_eq!(
            wrap("abcdefghijklmnopqrstuv", 10, ""),
            vec!["abcdefghij", "klmnopqrst", "uv"]
        );
        for row in wrap("a long message about a path /tmp/x/y/z/w/v", 12, "  ") {
            assert!(row.chars().count() <= 12, "{row:?}");
        }
        assert_eq!(wrap("", 10, "  "), vec![""]);
    }

    #[test]
    fn gauge_marks_the_position() {
        let look = Look::default();
        let text: String = budget_gauge(130_000, 100_000, 160_000, 30, &look)
            .spans
            .iter()
            .map(|s| s.content.to_string())
            .collect();
        assert!(
            text.starts_with("100k [") && text.ends_with("] 160k"),
            "{text}"
        );
        assert_eq!(text.matches('|').count(), 1);
        let low: String = budget_gauge(90_000, 100_000, 160_000, 30, &look)
            .spans
            .iter()
            .map(|s| s.content.to_string())
            .collect();
        assert!(low.contains("[<"), "{low}");
    }
}
