//! The dashboard after the search: the fully-training finalists (progress,
//! loss curve, validation PSNR against the bicubic line, ETA), then the
//! benchmark table as it fills, and the log.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Row, Table};
use ratatui::Frame;

use super::charts::{bicubic_line, padded};
use super::tables::log_pane;
use super::widgets::pane_block;
use crate::engine::run_view::FinalLive;
use crate::tui::app::App;
use crate::tui::format::{duration, loss, short};

/// The finalist the charts show: the first one training, else the best.
fn shown(app: &App) -> Option<(usize, &FinalLive)> {
    let finals = &app.view.stages.finals;
    finals
        .iter()
        .find(|(_, f)| f.training)
        .or_else(|| finals.iter().next())
        .map(|(r, f)| (*r, f))
}

/// The line under the header: which stage runs, of how many.
pub(super) fn stage_line(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let s = &app.view.stages;
    let mut spans = vec![Span::styled("stages ", look.dim())];
    for (name, done) in &s.stages {
        let style = if *done {
            look.good()
        } else if s.current.as_deref() == Some(name) {
            look.attention()
        } else {
            look.dim()
        };
        let mark = if *done { "+" } else { ">" };
        spans.push(Span::styled(format!("{mark}{name} "), style));
    }
    if let Some(best) = &app.view.best {
        spans.push(Span::styled(
            format!(" search best {:.2} dB", best.fitness().unwrap_or(f64::NAN)),
            look.dim(),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The body of the dashboard once a stage after the search has started.
pub(super) fn stages_body(frame: &mut Frame, area: Rect, app: &App, large: bool) {
    let s = &app.view.stages;
    let finals_h = (s.finals.len().max(1) + 3) as u16;
    let bench_h = if s.bench.is_empty() {
        0
    } else {
        (s.bench.len() + 3) as u16
    };
    let log_h = if large {
        (area.height / 5).clamp(5, 10)
    } else {
        0
    };
    let parts = Layout::vertical([
        Constraint::Length(finals_h),
        Constraint::Min(6),
        Constraint::Length(bench_h.min(area.height / 3 + 2)),
        Constraint::Length(log_h),
    ])
    .split(area);
    finals_table(frame, parts[0], app);
    let charts = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
        .split(parts[1]);
    final_loss_chart(frame, charts[0], app);
    val_chart(frame, charts[1], app);
    if bench_h > 0 {
        bench_table(frame, parts[2], app);
    }
    if log_h > 0 {
        log_pane(frame, parts[3], app, Line::from(" log "), false);
    }
}

fn finals_table(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let block = pane_block(" fully training ", false, look);
    let s = &app.view.stages;
    if s.finals.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("waiting for the first finalist", look.dim())).block(block),
            area,
        );
        return;
    }
    let header = Row::new([
        "#",
        "params",
        "step",
        "loss",
        "val PSNR",
        "vs bicubic",
        "ETA",
        "genes",
    ])
    .style(look.dim());
    let rows = s.finals.iter().map(|(rank, f)| {
        let psnr = f.psnr();
        let (eta, style) = if f.result.is_some() {
            ("done".to_string(), look.good())
        } else if f.training {
            (
                f.eta_seconds.map_or_else(|| "-".into(), duration),
                ratatui::style::Style::default(),
            )
        } else {
            ("waiting".to_string(), look.dim())
        };
        Row::new(vec![
            format!("{rank}"),
            short(f.params),
            format!("{}/{}", f.step, f.steps),
            f.loss.map_or_else(|| "-".into(), loss),
            psnr.map_or_else(|| "-".into(), |p| format!("{p:.3}")),
            psnr.map_or_else(|| "-".into(), |p| format!("{:+.3} dB", p - f.bicubic_psnr)),
            eta,
            f.genes.join(" "),
        ])
        .style(style)
    });
    let widths = [
        Constraint::Length(2),
        Constraint::Length(6),
        Constraint::Length(11),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Min(10),
    ];
    frame.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

fn final_loss_chart(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let Some((rank, f)) = shown(app) else {
        frame.render_widget(pane_block(" loss ", false, look), area);
        return;
    };
    let title = format!(" loss #{rank} ");
    if f.curve.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no loss yet", look.dim()))
                .block(pane_block(title, false, look)),
            area,
        );
        return;
    }
    let x_max = (f.steps.max(1) as f64).max(f.curve.iter().map(|p| p.0).fold(1.0, f64::max));
    let lo = f.curve.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = f
        .curve
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let data = Dataset::default()
        .name("L1")
        .marker(Marker::Dot)
        .graph_type(GraphType::Line)
        .style(look.fg(Color::Yellow))
        .data(&f.curve);
    let chart = Chart::new(vec![data])
        .block(pane_block(title, false, look))
        .legend_position(None)
        .x_axis(
            Axis::default()
                .style(look.dim())
                .bounds([0.0, x_max])
                .labels(["0".to_string(), format!("{x_max:.0} steps")]),
        )
        .y_axis(
            Axis::default()
                .style(look.dim())
                .bounds(padded(lo, hi))
                .labels([loss(lo), loss(hi)]),
        );
    frame.render_widget(chart, area);
}

fn val_chart(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let Some((rank, f)) = shown(app) else {
        frame.render_widget(pane_block(" validation PSNR ", false, look), area);
        return;
    };
    let title = format!(" val PSNR #{rank} vs bicubic {:.2} dB ", f.bicubic_psnr);
    if f.val.is_empty() {
        frame.render_widget(
            Paragraph::new(Span::styled("no validation yet", look.dim()))
                .block(pane_block(title, false, look)),
            area,
        );
        return;
    }
    let x_max = f.steps.max(1) as f64;
    let bicubic = [(0.0, f.bicubic_psnr), (x_max, f.bicubic_psnr)];
    let values = f.val.iter().map(|p| p.1).chain([f.bicubic_psnr]);
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    let datasets = vec![
        bicubic_line(look, &bicubic),
        Dataset::default()
            .name("model")
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(look.fg(Color::Green))
            .data(&f.val),
    ];
    let chart = Chart::new(datasets)
        .block(pane_block(title, false, look))
        .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
        .x_axis(
            Axis::default()
                .style(look.dim())
                .bounds([0.0, x_max])
                .labels(["0".to_string(), format!("{x_max:.0} steps")]),
        )
        .y_axis(
            Axis::default()
                .style(look.dim())
                .bounds(padded(lo, hi))
                .labels([format!("{lo:.2}"), format!("{hi:.2}")]),
        );
    frame.render_widget(chart, area);
}

fn bench_table(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let s = &app.view.stages;
    let header =
        Row::new(["set", "images", "method", "PSNR", "SSIM", "vs bicubic"]).style(look.dim());
    let rows = s.bench.iter().map(|r| {
        let bicubic = s
            .bench
            .iter()
            .find(|b| b.set == r.set && b.rank.is_none())
            .map(|b| b.psnr);
        let method = r
            .rank
            .map_or_else(|| "bicubic".to_string(), |k| format!("#{k}"));
        let delta = match (r.rank, bicubic) {
            (Some(_), Some(b)) => format!("{:+.3} dB", r.psnr - b),
            _ => String::new(),
        };
        Row::new(vec![
            r.set.clone(),
            r.images.to_string(),
            method,
            format!("{:.3}", r.psnr),
            format!("{:.4}", r.ssim),
            delta,
        ])
    });
    let widths = [
        Constraint::Min(8),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(10),
    ];
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(pane_block(" benchmarks ", false, look)),
        area,
    );
}
