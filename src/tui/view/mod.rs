//! Drawing: a pure function of [`App`]. A compact layout fits 80x24 (the
//! focused table, a small detail pane and one chart); from 120x34 every pane
//! is shown at once. Below 60x16 a message says how much room is needed.

mod bars;
mod charts;
mod detail;
mod overlay;
mod stages;
mod tables;
mod widgets;

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Pane};
use super::look::{asciify, Glyphs, Look};
use bars::{best_line, footer, header};
use charts::{loss_chart, progress_chart};
use detail::detail_pane;
use overlay::draw_overlay;
use tables::{elites_table, log_pane, population_table};

pub use widgets::{budget_gauge, gene_spans, wrap};

/// The smallest terminal the dashboard draws in.
pub const MIN_SIZE: (u16, u16) = (60, 16);

/// From this size on, every pane is shown at once.
pub const LARGE_SIZE: (u16, u16) = (120, 34);

/// Draws the whole dashboard for the current state.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        too_small(frame, area, &app.look);
    } else {
        let rows = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .split(area);
        header(frame, rows[0], app);
        let is_large = area.width >= LARGE_SIZE.0 && area.height >= LARGE_SIZE.1;
        if app.view.stages.after_search() {
            stages::stage_line(frame, rows[1], app);
            stages::stages_body(frame, rows[2], app, is_large);
        } else {
            best_line(frame, rows[1], app);
            if is_large {
                large(frame, rows[2], app);
            } else {
                compact(frame, rows[2], app);
            }
        }
        footer(frame, rows[3], app);
        if let Some(overlay) = &app.overlay {
            draw_overlay(frame, area, app, overlay);
        }
    }
    if app.look.glyphs == Glyphs::Ascii {
        asciify(frame.buffer_mut());
    }
}

fn too_small(frame: &mut Frame, area: Rect, look: &Look) {
    let text = format!(
        "terminal too small: need at least {}x{}, have {}x{}. Enlarge the window (q quits).",
        MIN_SIZE.0, MIN_SIZE.1, area.width, area.height
    );
    let y = area.height / 2;
    let para = Paragraph::new(text)
        .style(look.attention())
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true });
    let h = 3.min(area.height.saturating_sub(y.saturating_sub(1)));
    frame.render_widget(
        para,
        Rect::new(area.x, area.y + y.saturating_sub(1), area.width, h),
    );
}

fn compact(frame: &mut Frame, area: Rect, app: &App) {
    let rows_needed = match app.focus {
        Pane::Population => app.view.population.len().max(app.view.run.individuals),
        Pane::Elites => app.view.elites.len().max(app.problem.policy.num_elitism),
        Pane::Log => 8,
    } as u16
        + 3;
    let bottom_min = if area.height >= 18 { 9 } else { 6 };
    let table_h = rows_needed
        .min(area.height.saturating_sub(bottom_min))
        .max(4);
    let parts = Layout::vertical([Constraint::Length(table_h), Constraint::Min(0)]).split(area);
    let title = tab_title(app);
    match app.focus {
        Pane::Population => population_table(frame, parts[0], app, title, true),
        Pane::Elites => elites_table(frame, parts[0], app, title, true),
        Pane::Log => log_pane(frame, parts[0], app, title, true),
    }
    let cols = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(parts[1]);
    detail_pane(frame, cols[0], app);
    match app.focus {
        Pane::Population => loss_chart(frame, cols[1], app, app.selected_member()),
        _ => progress_chart(frame, cols[1], app),
    }
}

/// The compact layout's table title names all panes, the focused one bold.
fn tab_title(app: &App) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    for (pane, name) in [
        (Pane::Population, "population"),
        (Pane::Elites, "elites"),
        (Pane::Log, "log"),
    ] {
        if pane == app.focus {
            spans.push(Span::styled(
                format!("[{name}]"),
                app.look.key().add_modifier(Modifier::BOLD),
            ));
        } else {
            spans.push(Span::styled(name.to_string(), app.look.dim()));
        }
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled("(Tab) ", app.look.dim()));
    Line::from(spans)
}

fn large(frame: &mut Frame, area: Rect, app: &App) {
    let table_rows = app.view.population.len().max(app.view.run.individuals) as u16 + 3;
    let top_h = table_rows.clamp(7, area.height * 2 / 5);
    let log_h = (area.height / 5).clamp(5, 10);
    let parts = Layout::vertical([
        Constraint::Length(top_h),
        Constraint::Min(8),
        Constraint::Length(log_h),
    ])
    .split(area);
    let top = Layout::horizontal([Constraint::Percentage(64), Constraint::Percentage(36)])
        .split(parts[0]);
    let g = app.view.generation + 1;
    population_table(
        frame,
        top[0],
        app,
        Line::from(format!(" population, generation {g} ")),
        app.focus == Pane::Population,
    );
    elites_table(
        frame,
        top[1],
        app,
        Line::from(" elites "),
        app.focus == Pane::Elites,
    );
    let mid = Layout::horizontal([
        Constraint::Percentage(36),
        Constraint::Percentage(32),
        Constraint::Percentage(32),
    ])
    .split(parts[1]);
    detail_pane(frame, mid[0], app);
    loss_chart(frame, mid[1], app, app.selected_member());
    progress_chart(frame, mid[2], app);
    log_pane(
        frame,
        parts[2],
        app,
        Line::from(" log "),
        app.focus == Pane::Log,
    );
}
