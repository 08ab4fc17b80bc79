//! Drawing: a pure function of [`App`]. A compact layout fits 80x24 (the
//! focused table, a small detail pane and one chart); from 120x34 every pane
//! is shown at once. Below 60x16 a message says how much room is needed.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Axis, Block, BorderType, Borders, Cell, Chart, Clear, Dataset, GraphType, Paragraph, Row,
    Table, TableState, Wrap,
};
use ratatui::Frame;

use super::app::{App, Input, Mode, Overlay, Pane};
use super::format::{budget_percent, duration, loss, short, thousands};
use super::keys::{footer_keys, help_lines};
use super::look::{asciify, Glyphs, Look};
use super::validate::check_genes;
use crate::engine::run_view::RunState;
use crate::search::{Member, Origin, Status};
use crate::space::GeneList;

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
        best_line(frame, rows[1], app);
        if area.width >= LARGE_SIZE.0 && area.height >= LARGE_SIZE.1 {
            large(frame, rows[2], app);
        } else {
            compact(frame, rows[2], app);
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

fn pane_block<'a>(title: impl Into<Line<'a>>, focused: bool, look: &Look) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Plain)
        .border_style(look.border(focused))
        .title(title)
}

fn state_label(app: &App) -> (String, Style) {
    let look = &app.look;
    match app.view.state() {
        RunState::Starting => ("STARTING".into(), look.dim()),
        // Until the training in flight ends, "PAUSED" would look wrong next to it.
        RunState::Running if app.view.pausing() => ("PAUSING".into(), look.attention()),
        RunState::Running if app.view.paused() => ("PAUSED".into(), look.attention()),
        RunState::Running | RunState::Paused => ("RUNNING".into(), look.good()),
        RunState::Stopping => ("STOPPING".into(), look.attention()),
        RunState::Finished => ("FINISHED".into(), look.good()),
        RunState::Stopped => ("STOPPED".into(), look.attention()),
        RunState::Gone => ("ENDED".into(), look.error()),
    }
}

fn header(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let run = &app.view.run;
    let (done, training) = app.view.counts();
    let n = app.view.population.len().max(run.individuals);
    let mut name = if run.run.is_empty() {
        "(waiting for the run)".to_string()
    } else {
        run.run.clone()
    };
    if name.len() > 28 {
        name = format!("{}...", &name[..25]);
    }
    let eta = app
        .view
        .eta()
        .map(|d| duration(d.as_secs_f64()))
        .unwrap_or_else(|| "-".into());
    let devices = if run.devices.is_empty() {
        "-".to_string()
    } else {
        run.devices.join(",")
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut spans = vec![
        Span::styled(name, bold),
        Span::raw("  "),
        Span::raw(devices),
        Span::raw("  gen "),
        Span::styled(
            format!(
                "{}/{}",
                (app.view.generation + 1).min(run.generations.max(1)),
                run.generations
            ),
            bold,
        ),
        Span::raw("  ind "),
        Span::styled(format!("{}/{}", (done + training).min(n), n), bold),
        Span::raw(format!(
            "  {} ETA {}",
            duration(app.view.elapsed().as_secs_f64()),
            eta
        )),
    ];
    if app.mode == Mode::Attached {
        spans.push(Span::styled("  attached", look.dim()));
    }
    let (label, style) = state_label(app);
    let cols = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(label.len() as u16 + 3),
    ])
    .split(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), cols[0]);
    frame.render_widget(
        Paragraph::new(Span::styled(format!(" [{label}]"), style)).alignment(Alignment::Right),
        cols[1],
    );
}

fn best_line(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let mut spans = vec![Span::styled("best so far ", look.dim())];
    match &app.view.best {
        Some(m) => {
            spans.push(Span::styled(
                format!("{:.3} dB", m.fitness().unwrap_or(f64::NAN)),
                look.good(),
            ));
            spans.push(Span::raw(format!(
                "  #{} g{}  {} params  ",
                m.id,
                m.generation + 1,
                short(m.params)
            )));
            let used: usize = spans.iter().map(|s| s.content.len()).sum();
            let rest = (area.width as usize).saturating_sub(used);
            spans.extend(gene_spans(&m.genes, rest, look));
        }
        None => spans.push(Span::styled("none yet", look.dim())),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn footer(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    if let Some(flash) = &app.flash {
        frame.render_widget(
            Paragraph::new(Span::styled(flash.clone(), look.attention())),
            area,
        );
        return;
    }
    let live = !matches!(
        app.view.state(),
        RunState::Finished | RunState::Stopped | RunState::Gone
    );
    let keys = footer_keys(live, app.view.paused());
    // Narrow terminals drop "Enter detail" (the help lists it) so "? help" stays visible.
    let keys: Vec<(&str, &str)> = if area.width < 96 {
        keys.into_iter().filter(|(k, _)| *k != "Enter").collect()
    } else {
        keys
    };
    // Two spaces between keys when they fit, else one, so "? help" stays visible.
    let fits = |keys: &[(&str, &str)], gap: usize| -> bool {
        keys.iter()
            .map(|(k, w)| k.len() + 1 + w.len() + gap)
            .sum::<usize>()
            <= area.width as usize + gap
    };
    let keys: Vec<(&str, &str)> = if fits(&keys, 1) {
        keys
    } else {
        keys.into_iter().filter(|(k, _)| *k != "Tab").collect()
    };
    let len = |gap: usize| -> usize { keys.iter().map(|(k, w)| k.len() + 1 + w.len() + gap).sum() };
    let gap = if len(2) <= area.width as usize + 2 {
        "  "
    } else {
        " "
    };
    let mut spans = Vec::new();
    for (k, what) in keys {
        spans.push(Span::styled(k, look.key()));
        spans.push(Span::raw(format!(" {what}{gap}")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
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

struct Column {
    title: &'static str,
    width: u16,
}

/// Builds a table whose `genes` column takes the room the others leave.
fn table_layout(columns: &[Column], inner: u16) -> (Vec<Constraint>, usize) {
    let spacing = columns.len() as u16; // one between columns, plus the highlight mark
    let fixed: u16 = columns.iter().map(|c| c.width).sum::<u16>() + spacing + 1;
    let genes = inner.saturating_sub(fixed).max(8);
    let constraints = columns
        .iter()
        .map(|c| {
            if c.width == 0 {
                Constraint::Length(genes)
            } else {
                Constraint::Length(c.width)
            }
        })
        .collect();
    (constraints, genes as usize)
}

fn id_text(m: &Member) -> String {
    let mark = if m.origin.is_hand_made() { "*" } else { "" };
    format!("#{}{mark}", m.id)
}

fn population_table(frame: &mut Frame, area: Rect, app: &App, title: Line, focused: bool) {
    let look = &app.look;
    let wide = area.width >= 100;
    let id_w = app
        .view
        .population
        .iter()
        .map(|m| id_text(m).len())
        .max()
        .unwrap_or(3)
        .max(3) as u16;
    // Below 76 columns Multi-Adds give their room to the genes (the detail pane has them).
    let narrow = area.width < 76;
    let mut columns = vec![
        Column {
            title: "id",
            width: id_w,
        },
        Column {
            title: "genes",
            width: 0,
        },
        Column {
            title: "params",
            width: if wide { 9 } else { 6 },
        },
        Column {
            title: "bud",
            width: 4,
        },
        Column {
            title: "M-Adds",
            width: 6,
        },
        Column {
            title: "loss",
            width: 6,
        },
        Column {
            title: "PSNR",
            width: if wide { 7 } else { 5 },
        },
        Column {
            title: "state",
            width: 9,
        },
    ];
    const MADDS: usize = 4;
    if narrow {
        columns.remove(MADDS);
    }
    let (widths, genes_w) = table_layout(&columns, area.width.saturating_sub(2));
    let (min, max) = (app.view.run.min_params, app.view.run.max_params);
    let rows: Vec<Row> = app
        .view
        .population
        .iter()
        .map(|m| {
            let (label, tone) = app.member_state(m);
            let live = app.view.live.get(&m.id);
            let final_loss = match &m.status {
                Status::Evaluated(e) | Status::Cached(e) => e.final_loss,
                _ => None,
            };
            let last_loss = live.and_then(|l| l.loss).or(final_loss);
            let pct = budget_percent(m.params, min, max);
            let in_budget = (min..=max).contains(&m.params);
            let psnr = m
                .fitness()
                .map(|f| {
                    if wide {
                        format!("{f:.3}")
                    } else {
                        format!("{f:.2}")
                    }
                })
                .unwrap_or_else(|| "-".into());
            let params = if wide {
                thousands(m.params)
            } else {
                short(m.params)
            };
            let mut cells = vec![
                Cell::from(id_text(m)),
                Cell::from(Line::from(gene_spans(&m.genes, genes_w, look))),
                Cell::from(params),
                Cell::from(Span::styled(
                    format!("{pct:.0}%"),
                    if in_budget {
                        Style::new()
                    } else {
                        look.error()
                    },
                )),
                Cell::from(short(m.multi_adds)),
                Cell::from(last_loss.map(loss).unwrap_or_else(|| "-".into())),
                Cell::from(psnr),
                Cell::from(Span::styled(label, look.tone(tone))),
            ];
            if narrow {
                cells.remove(MADDS);
            }
            Row::new(cells)
        })
        .collect();
    let empty = rows.is_empty();
    let header = Row::new(columns.iter().map(|c| Cell::from(c.title)))
        .style(Style::new().add_modifier(Modifier::BOLD));
    let table = Table::new(rows, widths)
        .header(header)
        .block(pane_block(title, focused, look))
        .row_highlight_style(selection_style(look, focused))
        .highlight_symbol(">");
    let mut state = TableState::default().with_selected((!empty).then_some(app.pop_selected));
    frame.render_stateful_widget(table, area, &mut state);
    if empty {
        placeholder(frame, area, "waiting for the first generation", look);
    }
}

fn selection_style(look: &Look, focused: bool) -> Style {
    if focused {
        look.selected()
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    }
}

fn placeholder(frame: &mut Frame, area: Rect, text: &str, look: &Look) {
    if area.height < 4 || area.width < 4 {
        return;
    }
    let inner = Rect::new(area.x + 2, area.y + 2, area.width - 4, 1);
    frame.render_widget(
        Paragraph::new(Span::styled(text.to_string(), look.dim())),
        inner,
    );
}

fn elites_table(frame: &mut Frame, area: Rect, app: &App, title: Line, focused: bool) {
    let look = &app.look;
    let columns = [
        Column {
            title: "#",
            width: 2,
        },
        Column {
            title: "id",
            width: 5,
        },
        Column {
            title: "PSNR",
            width: 7,
        },
        Column {
            title: "params",
            width: 6,
        },
        Column {
            title: "genes",
            width: 0,
        },
    ];
    let (widths, genes_w) = table_layout(&columns, area.width.saturating_sub(2));
    let rows: Vec<Row> = app
        .view
        .elites
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Row::new(vec![
                Cell::from((i + 1).to_string()),
                Cell::from(id_text(m)),
                Cell::from(
                    m.fitness()
                        .map(|f| format!("{f:.3}"))
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::from(short(m.params)),
                Cell::from(Line::from(gene_spans(&m.genes, genes_w, look))),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let header = Row::new(columns.iter().map(|c| Cell::from(c.title)))
        .style(Style::new().add_modifier(Modifier::BOLD));
    let table = Table::new(rows, widths)
        .header(header)
        .block(pane_block(title, focused, look))
        .row_highlight_style(selection_style(look, focused))
        .highlight_symbol(">");
    let mut state = TableState::default().with_selected((!empty).then_some(app.elite_selected));
    frame.render_stateful_widget(table, area, &mut state);
    if empty {
        placeholder(frame, area, "none until a generation is done", look);
    }
}

fn log_pane(frame: &mut Frame, area: Rect, app: &App, title: Line, focused: bool) {
    let look = &app.look;
    let height = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2) as usize;
    let end = app.view.log.len().saturating_sub(app.log_scroll);
    // Long messages wrap; filled from the newest line up, so the end shows.
    let mut lines: Vec<Line> = Vec::new();
    for l in app.view.log.iter().take(end).rev() {
        if lines.len() >= height {
            break;
        }
        let prefix = match l.level.as_str() {
            "info" => "",
            "you" => "you: ",
            "warn" => "warn: ",
            "error" => "error: ",
            _ => "",
        };
        let style = look.level(&l.level);
        let rows = wrap(&format!("{prefix}{}", l.text), width, "  ");
        for row in rows.into_iter().rev() {
            lines.push(Line::from(Span::styled(row, style)));
        }
    }
    // The oldest entry may be cut at its top, never the newest at its end.
    lines.truncate(height);
    lines.reverse();
    let title = if app.log_scroll > 0 {
        let mut t = title;
        t.push_span(Span::styled(
            format!("({} newer below) ", app.log_scroll),
            look.dim(),
        ));
        t
    } else {
        title
    };
    frame.render_widget(
        Paragraph::new(lines).block(pane_block(title, focused, look)),
        area,
    );
}

fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::Initial => "random".into(),
        Origin::Mutation { parent } => format!("mutation of #{parent}"),
        Origin::Crossover { parents } => format!("crossover of #{} x #{}", parents[0], parents[1]),
        Origin::Injected => "injected".into(),
        Origin::HandMutated { was } => format!("hand-mutated ({})", origin_text(was)),
    }
}

/// The lines describing a member: state, training, budget, blocks.
fn detail_lines(app: &App, m: &Member, width: usize, full: bool) -> Vec<Line<'static>> {
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

fn detail_pane(frame: &mut Frame, area: Rect, app: &App) {
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

/// Axis bounds with a little room, never empty.
fn padded(lo: f64, hi: f64) -> [f64; 2] {
    if !(lo.is_finite() && hi.is_finite()) {
        return [0.0, 1.0];
    }
    if hi - lo < 1e-9 {
        let d = lo.abs().max(1e-3) * 0.1;
        return [lo - d, hi + d];
    }
    let d = (hi - lo) * 0.05;
    [lo - d, hi + d]
}

fn loss_chart(frame: &mut Frame, area: Rect, app: &App, member: Option<&Member>) {
    let look = &app.look;
    let Some(m) = member else {
        frame.render_widget(
            Paragraph::new(Span::styled("no member selected", look.dim()))
                .block(pane_block(" loss ", false, look)),
            area,
        );
        return;
    };
    let title = format!(" loss #{} ", m.id);
    let live = app.view.live.get(&m.id);
    let points: &[(f64, f64)] = live.map(|l| l.curve.as_slice()).unwrap_or(&[]);
    if points.is_empty() {
        let (label, _) = app.member_state(m);
        let text = format!("no loss yet ({label})");
        frame.render_widget(
            Paragraph::new(Span::styled(text, look.dim())).block(pane_block(title, false, look)),
            area,
        );
        return;
    }
    let steps = live.map(|l| l.steps).unwrap_or(0).max(1) as f64;
    let x_max = steps.max(points.iter().map(|p| p.0).fold(1.0, f64::max));
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let y = padded(lo, hi);
    let dataset = Dataset::default()
        .name("L1")
        .marker(Marker::Dot)
        .graph_type(GraphType::Line)
        .style(look.fg(ratatui::style::Color::Yellow))
        .data(points);
    let chart = Chart::new(vec![dataset])
        .block(pane_block(title, false, look))
        .legend_position(None)
        // No axis titles: drawn inside the plot, they hid the first and
        // last points. The pane title names the values, the labels the unit.
        .x_axis(
            Axis::default()
                .style(look.dim())
                .bounds([0.0, x_max])
                .labels(["0".to_string(), format!("{x_max:.0} steps")]),
        )
        .y_axis(
            Axis::default()
                .style(look.dim())
                .bounds(y)
                .labels([loss(lo), loss(hi)]),
        );
    frame.render_widget(chart, area);
}

fn progress_chart(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let title = " PSNR per generation ";
    let best: Vec<(f64, f64)> = app
        .view
        .summaries
        .iter()
        .filter_map(|(g, (b, _))| b.map(|b| (*g as f64 + 1.0, b)))
        .collect();
    let mean: Vec<(f64, f64)> = app
        .view
        .summaries
        .iter()
        .filter_map(|(g, (_, m))| m.map(|m| (*g as f64 + 1.0, m)))
        .collect();
    if best.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no generation done yet", look.dim()))
                .block(pane_block(title, false, look)),
            area,
        );
        return;
    }
    let all = best.iter().chain(&mean).map(|p| p.1);
    let lo = all.clone().fold(f64::INFINITY, f64::min);
    let hi = all.fold(f64::NEG_INFINITY, f64::max);
    let gens = app.view.run.generations.max(2) as f64;
    let datasets = vec![
        Dataset::default()
            .name("best")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(look.fg(ratatui::style::Color::Green))
            .data(&best),
        Dataset::default()
            .name("mean")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(look.fg(ratatui::style::Color::Cyan))
            .data(&mean),
    ];
    let chart = Chart::new(datasets)
        .block(pane_block(title, false, look))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
        // No axis titles: drawn inside the plot, they hid the first and
        // last points. The pane title names the values, the labels the unit.
        .x_axis(
            Axis::default()
                .style(look.dim())
                .bounds([1.0, gens])
                .labels(["1".to_string(), format!("gen {gens:.0}")]),
        )
        .y_axis(
            Axis::default()
                .style(look.dim())
                .bounds(padded(lo, hi))
                .labels([format!("{lo:.2}"), format!("{hi:.2}")]),
        );
    frame.render_widget(chart, area);
}

/// A rectangle of at most `w`x`h` centred in `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn popup(frame: &mut Frame, rect: Rect, title: &str, text: Text<'static>, look: &Look) {
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(pane_block(format!(" {title} "), true, look)),
        rect,
    );
}

fn key_line(look: &Look, keys: &str, what: &str) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{keys:<12}"), look.key()),
        Span::raw(what.to_string()),
    ])
}

fn draw_overlay(frame: &mut Frame, area: Rect, app: &App, overlay: &Overlay) {
    let look = &app.look;
    match overlay {
        Overlay::Help => {
            let mut lines: Vec<Line> = help_lines(app.mode)
                .into_iter()
                .map(|(keys, what)| key_line(look, keys, what))
                .collect();
            lines.extend([
                Line::from(""),
                Line::from(Span::styled(
                    "#12* = made or changed by hand.  Genes: S shrink, G group, C contextual.",
                    look.dim(),
                )),
                Line::from(Span::styled(
                    "bud = where params lie in the budget min..max.  CxG = convs x growth.",
                    look.dim(),
                )),
            ]);
            let h = lines.len() as u16 + 2;
            popup(
                frame,
                centered(area, 74, h),
                "keys",
                Text::from(lines),
                look,
            );
        }
        Overlay::Detail => detail_overlay(frame, area, app),
        Overlay::ConfirmKill { id } => {
            let genes = app
                .view
                .population
                .iter()
                .find(|m| m.id == *id)
                .map(|m| m.genes.to_string())
                .unwrap_or_default();
            let lines = vec![
                Line::from(format!("Kill member #{id}? It gets no fitness.")),
                Line::from(Span::styled(genes, look.dim())),
                Line::from(""),
                Line::from(vec![
                    Span::styled("y", look.key()),
                    Span::raw(" kill   "),
                    Span::styled("n/Esc", look.key()),
                    Span::raw(" keep it"),
                ]),
            ];
            popup(
                frame,
                centered(area, 60, 7),
                "kill",
                Text::from(lines),
                look,
            );
        }
        Overlay::ConfirmQuit => {
            let lines = match app.mode {
                Mode::InProcess => vec![
                    Line::from("Stop the search? It checkpoints and can be resumed with"),
                    Line::from(Span::styled(
                        format!("  esr-ea search --resume {}", app.view.run_dir_text()),
                        look.key(),
                    )),
                    Line::from(""),
                    Line::from(vec![
                        Span::styled("y", look.key()),
                        Span::raw(" stop and checkpoint   "),
                        Span::styled("n/Esc", look.key()),
                        Span::raw(" keep watching"),
                    ]),
                ],
                Mode::Attached => vec![
                    Line::from("Leave the dashboard. Stop the search too?"),
                    Line::from(""),
                    Line::from(vec![
                        Span::styled("y", look.key()),
                        Span::raw(" stop it (checkpoint, resumable)"),
                    ]),
                    Line::from(vec![
                        Span::styled("n", look.key()),
                        Span::raw(if app.view.paused() {
                            " leave it (detach; it stays paused)   "
                        } else {
                            " leave it running (detach)   "
                        }),
                        Span::styled("Esc", look.key()),
                        Span::raw(" cancel"),
                    ]),
                ],
            };
            popup(
                frame,
                centered(area, 64, 7),
                "quit",
                Text::from(lines),
                look,
            );
        }
        Overlay::Inject(input) => {
            let r = &app.problem.range;
            let sp = &app.problem.space;
            let list = |v: &[usize]| {
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            };
            let kinds = sp
                .block_type
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join("/");
            let mut lines = vec![
                Line::from("Genes K_C_G_O to add to this generation, separated by spaces"),
                Line::from(Span::styled(
                    format!(
                        "K {kinds}, C {}, G and O {} (O >= G)",
                        list(&sp.conv_num),
                        list(&sp.growth_rate),
                    ),
                    look.dim(),
                )),
                Line::from(Span::styled(
                    format!(
                        "{}..{} blocks, {}..{} params",
                        r.min_active,
                        r.node_num,
                        thousands(r.min_params),
                        thousands(r.max_params)
                    ),
                    look.dim(),
                )),
                prompt_line(input, look),
            ];
            lines.extend(feedback(input, look, || {
                check_genes(&app.problem, &input.text).ok().map(|c| {
                    format!(
                        "ok: {} blocks, {} params",
                        c.genes.len(),
                        thousands(c.params)
                    )
                })
            }));
            lines.push(Line::from(vec![
                Span::styled("Enter", look.key()),
                Span::raw(" add   "),
                Span::styled("Esc", look.key()),
                Span::raw(" cancel   "),
                Span::styled("Ctrl-U", look.key()),
                Span::raw(" clear"),
            ]));
            let w = area.width.saturating_sub(4).min(90);
            popup(
                frame,
                centered(area, w, 10),
                "inject",
                Text::from(lines),
                look,
            );
        }
        Overlay::Export(input) => {
            let mut lines = vec![
                Line::from("Export the best N architectures with their weights to"),
                Line::from(Span::styled(
                    match &app.view.run_dir {
                        Some(dir) => format!("  {}", dir.join("export").display()),
                        None => "  the run directory's export/ folder".into(),
                    },
                    look.key(),
                )),
                prompt_line(input, look),
            ];
            lines.extend(feedback(input, look, || None));
            lines.push(Line::from(vec![
                Span::styled("Enter", look.key()),
                Span::raw(" export   "),
                Span::styled("Esc", look.key()),
                Span::raw(" cancel"),
            ]));
            let w = area.width.saturating_sub(4).min(80);
            popup(
                frame,
                centered(area, w, 9),
                "export",
                Text::from(lines),
                look,
            );
        }
    }
}

fn prompt_line(input: &Input, look: &Look) -> Line<'static> {
    Line::from(vec![
        Span::styled("> ", look.key()),
        Span::raw(input.text.clone()),
        Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
    ])
}

/// The inline error, or a preview of what Enter would do.
fn feedback(
    input: &Input,
    look: &Look,
    preview: impl Fn() -> Option<String>,
) -> Vec<Line<'static>> {
    match &input.error {
        Some(e) => vec![Line::from(Span::styled(
            format!("not sent: {e}"),
            look.error(),
        ))],
        None => match preview() {
            Some(p) => vec![Line::from(Span::styled(p, look.good()))],
            None => vec![Line::from("")],
        },
    }
}

fn detail_overlay(frame: &mut Frame, area: Rect, app: &App) {
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
const MIN_CHART_ROWS: usize = 7;

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
