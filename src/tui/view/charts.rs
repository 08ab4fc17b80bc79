//! The loss curve of one member and the best/mean PSNR per generation
//! (against bicubic on the same validation images, where the run knows it).

use ratatui::layout::{Constraint, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Paragraph};
use ratatui::Frame;

use super::widgets::pane_block;
use crate::search::Member;
use crate::tui::app::App;
use crate::tui::format::loss;
use crate::tui::look::Look;

/// Axis bounds with a little room, never empty.
pub(super) fn padded(lo: f64, hi: f64) -> [f64; 2] {
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

/// Bicubic's level, the line every PSNR chart is read against.
pub(super) fn bicubic_line<'a>(look: &Look, points: &'a [(f64, f64)]) -> Dataset<'a> {
    Dataset::default()
        .name("bicubic")
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(look.dim())
        .data(points)
}

pub(super) fn loss_chart(frame: &mut Frame, area: Rect, app: &App, member: Option<&Member>) {
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

/// Where the legend hides the fewest points. The default corner (top
/// right) is where an improving search draws its newest generations, so the
/// left corners are tried first and win ties; the right ones only when they
/// hide fewer (after one generation, every point is at the left edge).
fn legend_corner(points: &[(f64, f64)], x: [f64; 2], y: [f64; 2]) -> LegendPosition {
    let hidden = |right: bool, upper: bool| {
        points
            .iter()
            .filter(|&&(px, py)| {
                let fx = (px - x[0]) / (x[1] - x[0]).max(1e-9);
                let fy = (py - y[0]) / (y[1] - y[0]).max(1e-9);
                (if right { fx > 0.5 } else { fx < 0.5 })
                    && (if upper { fy > 0.5 } else { fy < 0.5 })
            })
            .count()
    };
    [
        (LegendPosition::TopLeft, false, true),
        (LegendPosition::BottomLeft, false, false),
        (LegendPosition::TopRight, true, true),
        (LegendPosition::BottomRight, true, false),
    ]
    .into_iter()
    .min_by_key(|(_, right, upper)| hidden(*right, *upper))
    .map_or(LegendPosition::TopLeft, |(corner, _, _)| corner)
}

pub(super) fn progress_chart(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let bicubic_psnr = app.view.run.bicubic_psnr;
    let title = match bicubic_psnr {
        Some(b) => format!(" PSNR per generation vs bicubic {b:.2} dB "),
        None => " PSNR per generation ".to_string(),
    };
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
    let gens = app.view.run.generations.max(2) as f64;
    let bicubic: Vec<(f64, f64)> =
        bicubic_psnr.map_or_else(Vec::new, |b| vec![(1.0, b), (gens, b)]);
    let all = best.iter().chain(&mean).chain(&bicubic).map(|p| p.1);
    let lo = all.clone().fold(f64::INFINITY, f64::min);
    let hi = all.fold(f64::NEG_INFINITY, f64::max);
    let mut datasets = vec![
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
    if !bicubic.is_empty() {
        datasets.insert(0, bicubic_line(look, &bicubic));
    }
    let y = padded(lo, hi);
    let plotted: Vec<(f64, f64)> = best.iter().chain(&mean).copied().collect();
    let chart = Chart::new(datasets)
        .block(pane_block(title, false, look))
        .legend_position(Some(legend_corner(&plotted, [1.0, gens], y)))
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
                .bounds(y)
                .labels([format!("{lo:.2}"), format!("{hi:.2}")]),
        );
    frame.render_widget(chart, area);
}
