//! Everything about one member: the detail pane and its full-screen window.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::charts::loss_chart;
use super::widgets::{budget_gauge, origin_text, pane_block, wrap};
use crate::search::{Member, Status};
use crate::tui::app::App;
use crate::tui::format::{budget_percent, duration, short, thousands};

/// The lines describing a member: state, training, budget, blocks.
pub(super) fn detail_lines(app: &App, m: &Member, width: usize, full: bool) -> Vec<Line<'static>> {
    let look = &app.look;
    let (label, tone) = app.member_state(m);
    let mut first = vec![Span::styled(label, look.tone(tone))];
    // The fitness goes first: the compact pane cuts long lines.
    if let Some(f) = m.fitness() {
        first.push(Span::styled(format!("  {f:.3} dB"), look.good()));
    }
    first.push(Span::raw(format!(
        "  gen {}  {}",
        m.generation + 1,
        origin_text(&m.origin)
    )));
    let mut lines = vec![Line::from(first)];
    let live = app.view.live.get(&m.id);
    let mut training = Vec::new();
    if let Some(l) = live.filter(|l| l.steps > 0) {
        training.push(format!("step {}/{}", l.step, l.steps));
        if !l.device.is_empty() {
            training.push(format!("on {}", l.device));
        }
    }
    if let Some(lr) = live.and_then(|l| l.lr) {
        training.push(format!("lr {lr:.1e}"));
    }
    if training.is_empty() && m.status == Status::Pending {
        training.push("not trained yet".into());
    }
    if let Status::Evaluated(e) | Status::Cached(e) = &m.status {
        training.push(format!("SSIM {:.4}", e.ssim));
        training.push(format!("in {}", duration(e.seconds)));
        if let Some(ms) = e.latency_ms {
            training.push(format!("latency {ms:.0} ms"));
        }
    }
    // Whole parts only: what does not fit is left out (Enter shows everything).
    let mut text = String::new();
    for part in training {
        let sep = if text.is_empty() { "" } else { "  " };
        if full || text.len() + sep.len() + part.len() <= width {
            text.push_str(sep);
            text.push_str(&part);
        }
    }
    lines.push(Line::from(text));
    let note = match &m.status {
        Status::Waiting(r) => Some(format!(
            "waits at step {} (mean loss {:.5}) for its generation: successive halving",
            r.step, r.loss
        )),
        Status::Promoted(r) => Some(format!(
            "promoted at step {} (mean loss {:.5}): continues from its checkpoint",
            r.step, r.loss
        )),
        Status::Stopped(s) => Some(format!(
            "stopped at step {}/{}: {}",
            s.step,
            s.steps,
            s.reason()
        )),
        _ => None,
    };
    if let Some(note) = note {
        for row in wrap(&note, width.max(20), "  ") {
            lines.push(Line::from(row));
        }
    }
    if let Status::Failed { reason } = &m.status {
        for row in wrap(&format!("failed: {reason}"), width.max(20), "  ") {
            lines.push(Line::from(Span::styled(row, look.error())));
        }
    }
    let mut params = format!(
        "params {} ({:.0}% of budget)",
        thousands(m.params),
        budget_percent(m.params, app.view.run.min_params, app.view.run.max_params)
    );
    let madds = format!(", {} Multi-Adds", short(m.multi_adds));
    if params.len() + madds.len() <= width {
        params.push_str(&madds);
    }
    lines.push(Line::from(params));
    lines.push(budget_gauge(
        m.params,
        app.view.run.min_params,
        app.view.run.max_params,
        width,
        look,
    ));
    if full {
        lines.push(Line::from(Span::styled("genes", look.dim())));
        let mut row: Vec<Span> = Vec::new();
        let mut used = 0;
        for gene in m.genes.iter() {
            let text = gene.to_string();
            if used + text.len() + 1 > width && !row.is_empty() {
                lines.push(Line::from(std::mem::take(&mut row)));
                used = 0;
            }
            row.push(Span::styled(text.clone(), look.kind(gene.kind)));
            row.push(Span::raw(" "));
            used += text.len() + 1;
        }
        if !row.is_empty() {
            lines.push(Line::from(row));
        }
    }
    // 35 columns, so the compact detail pane at 80x24 shows whole rows.
    lines.push(Line::from(Span::styled(
        format!(
            "{:<13}CxG   in->out  params",
            format!("{} blocks", m.genes.len())
        ),
        Style::new().add_modifier(Modifier::BOLD),
    )));
    let cost = app.problem.space.arch(m.genes.clone()).cost();
    for b in &cost.blocks {
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} {:<10}", b.gene.kind, b.gene.kind.long_name()),
                look.kind(b.gene.kind),
            ),
            Span::raw(format!(
                " {:>2}x{:<2} {:>3}->{:<3} {:>7}",
                b.gene.convs,
                b.gene.growth,
                b.in_ch,
                b.out_ch,
                thousands(b.params)
            )),
        ]));
    }
    lines
}

pub(super) fn detail_pane(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let Some(m) = app.selected_member() else {
        frame.render_widget(
            Paragraph::new(Span::styled("no member selected", look.dim()))
                .block(pane_block(" detail ", false, look)),
            area,
        );
        return;
    };
    let inner_w = area.width.saturating_sub(2) as usize;
    let mut lines = detail_lines(app, m, inner_w, false);
    let room = area.height.saturating_sub(2) as usize;
    if lines.len() > room && room >= 1 {
        let hidden = lines.len() - (room - 1);
        lines.truncate(room - 1);
        lines.push(Line::from(Span::styled(
            format!("... {hidden} more lines: Enter for all"),
            look.dim(),
        )));
    }
    let title = format!(" #{} detail (Enter) ", m.id);
    frame.render_widget(
        Paragraph::new(lines).block(pane_block(title, false, look)),
        area,
    );
}

pub(super) fn detail_overlay(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let rect = Rect::new(
        area.x + 1,
        area.y + 1,
        area.width.saturating_sub(2),
        area.height.saturating_sub(2),
    );
    frame.render_widget(Clear, rect);
    let Some(m) = app.selected_member() else {
        return;
    };
    let block = pane_block(
        format!(" member #{} (Esc closes, j/k browse) ", m.id),
        true,
        look,
    );
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    if inner.width >= 100 {
        let parts = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
            .split(inner);
        let lines = detail_lines(app, m, parts[0].width as usize, true);
        frame.render_widget(Paragraph::new(lines), parts[0]);
        loss_chart(frame, parts[1], app, Some(m));
        return;
    }
    // Stacked: the text takes the rows it needs and the chart the rest. The
    // block rows matter most: when room is short the gene list goes first
    // (the block rows name every gene), then the chart (the main screen
    // has one too).
    let width = inner.width as usize;
    let mut lines = detail_lines(app, m, width, true);
    if (inner.height as usize) < lines.len() + MIN_CHART_ROWS {
        lines = detail_lines(app, m, width, false);
    }
    let free = (inner.height as usize).saturating_sub(lines.len());
    if free >= MIN_CHART_ROWS {
        let parts = Layout::vertical([Constraint::Length(lines.len() as u16), Constraint::Min(0)])
            .split(inner);
        frame.render_widget(Paragraph::new(lines), parts[0]);
        loss_chart(frame, parts[1], app, Some(m));
    } else {
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// Rows a loss chart needs to show more than a step (borders and axis included).
pub(super) const MIN_CHART_ROWS: usize = 7;
