//! The population and elites tables and the log pane.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::widgets::{gene_spans, id_text, pane_block, placeholder, selection_style, wrap};
use crate::search::Status;
use crate::tui::app::App;
use crate::tui::format::{budget_percent, loss, short, thousands};
use crate::tui::look::Look;

pub(super) struct Column {
    title: &'static str,
    width: u16,
}

/// How a table pane is framed: its title, focus, selected row, and what it
/// says while it has no rows.
pub(super) struct Framed<'a> {
    title: Line<'a>,
    focused: bool,
    selected: usize,
    empty: &'a str,
}

/// Draws `rows` under the columns' bold titles in a framed pane, the
/// selected row marked; a placeholder when there are none.
fn show_table(
    frame: &mut Frame,
    area: Rect,
    look: &Look,
    columns: &[Column],
    rows: Vec<Row>,
    widths: Vec<Constraint>,
    pane: Framed,
) {
    let empty = rows.is_empty();
    let header = Row::new(columns.iter().map(|c| Cell::from(c.title)))
        .style(Style::new().add_modifier(Modifier::BOLD));
    let table = Table::new(rows, widths)
        .header(header)
        .block(pane_block(pane.title, pane.focused, look))
        .row_highlight_style(selection_style(look, pane.focused))
        .highlight_symbol(">");
    let mut state = TableState::default().with_selected((!empty).then_some(pane.selected));
    frame.render_stateful_widget(table, area, &mut state);
    if empty {
        placeholder(frame, area, pane.empty, look);
    }
}

/// Builds a table whose `genes` column takes the room the others leave.
pub(super) fn table_layout(columns: &[Column], inner: u16) -> (Vec<Constraint>, usize) {
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

pub(super) fn population_table(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    title: Line,
    focused: bool,
) {
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
    let with_bicubic = app.view.run.bicubic_psnr.is_some();
    // Below 76 columns (86 with the vs-bicubic column) Multi-Adds give their
    // room to the genes (the detail pane has them).
    let narrow = area.width < if with_bicubic { 86 } else { 76 };
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
            title: VS_BICUBIC,
            width: VS_BICUBIC_WIDTH,
        },
        Column {
            title: "state",
            // Slurm rows carry a job id: "R 123456 45%".
            width: if app.view.live.values().any(|l| l.job.is_some()) {
                14
            } else {
                9
            },
        },
    ];
    const MADDS: usize = 4;
    const VS_BIC: usize = 7;
    if !with_bicubic {
        columns.remove(VS_BIC);
    }
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
                over_bicubic_cell(app, m.fitness()),
                Cell::from(Span::styled(label, look.tone(tone))),
            ];
            if !with_bicubic {
                cells.remove(VS_BIC);
            }
            if narrow {
                cells.remove(MADDS);
            }
            Row::new(cells)
        })
        .collect();
    let pane = Framed {
        title,
        focused,
        selected: app.pop_selected,
        empty: "waiting for the first generation",
    };
    show_table(frame, area, look, &columns, rows, widths, pane);
}

/// Title of the column of fitness as dB over bicubic.
const VS_BICUBIC: &str = "vs bic";
/// Its width: `-12.34`.
const VS_BICUBIC_WIDTH: u16 = 6;

/// A fitness as signed dB over bicubic, red below it.
fn over_bicubic_cell(app: &App, psnr: Option<f64>) -> Cell<'static> {
    let text = app.view.over_bicubic_cell(psnr);
    let below = psnr
        .zip(app.view.run.bicubic_psnr)
        .is_some_and(|(p, b)| p < b);
    Cell::from(Span::styled(
        text,
        if below {
            app.look.error()
        } else {
            Style::new()
        },
    ))
}

pub(super) fn elites_table(frame: &mut Frame, area: Rect, app: &App, title: Line, focused: bool) {
    let look = &app.look;
    let with_bicubic = app.view.run.bicubic_psnr.is_some();
    let mut columns = vec![
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
            title: VS_BICUBIC,
            width: VS_BICUBIC_WIDTH,
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
    const VS_BIC: usize = 3;
    const PARAMS: usize = 4;
    // A narrow pane (the large layout's side pane) gives the vs-bicubic
    // column the room of the params (the detail pane has them).
    let drop_params = with_bicubic && area.width < 50;
    if drop_params {
        columns.remove(PARAMS);
    }
    if !with_bicubic {
        columns.remove(VS_BIC);
    }
    let (widths, genes_w) = table_layout(&columns, area.width.saturating_sub(2));
    let rows: Vec<Row> = app
        .view
        .elites
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut cells = vec![
                Cell::from((i + 1).to_string()),
                Cell::from(id_text(m)),
                Cell::from(
                    m.fitness()
                        .map(|f| format!("{f:.3}"))
                        .unwrap_or_else(|| "-".into()),
                ),
                over_bicubic_cell(app, m.fitness()),
                Cell::from(short(m.params)),
                Cell::from(Line::from(gene_spans(&m.genes, genes_w, look))),
            ];
            if drop_params {
                cells.remove(PARAMS);
            }
            if !with_bicubic {
                cells.remove(VS_BIC);
            }
            Row::new(cells)
        })
        .collect();
    let pane = Framed {
        title,
        focused,
        selected: app.elite_selected,
        empty: "none until a generation is done",
    };
    show_table(frame, area, look, &columns, rows, widths, pane);
}

pub(super) fn log_pane(frame: &mut Frame, area: Rect, app: &App, title: Line, focused: bool) {
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
