//! The header (run, generation, clock, state), the best-so-far line and the
//! footer (the keys, or the reply to the last one).

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::widgets::gene_spans;
use crate::engine::run_view::RunState;
use crate::tui::app::{App, Mode};
use crate::tui::format::{duration, short};
use crate::tui::keys::footer_keys;

pub(super) fn state_label(app: &App) -> (String, Style) {
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

pub(super) fn header(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let run = &app.view.run;
    let (done, training) = app.view.counts();
    let n = app.view.population.len().max(run.individuals);
    let name = if run.run.is_empty() {
        "(waiting for the run)".to_string()
    } else {
        run.run.clone()
    };
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
    ];
    let stages = &app.view.stages;
    if stages.after_search() {
        // The search's generation and members are history now: the header
        // follows the stage that runs, with its own progress and ETA.
        let stage = stages.current.clone().unwrap_or_default();
        let of = stages
            .position
            .map(|(i, n)| format!(" {}/{n}", i + 1))
            .unwrap_or_default();
        spans.push(Span::raw("  stage"));
        spans.push(Span::raw(of));
        spans.push(Span::raw(" "));
        spans.push(Span::styled(stage, bold));
        if let Some(progress) = stages.progress() {
            spans.push(Span::raw(format!("  {progress}")));
        }
    } else {
        spans.extend([
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
        ]);
    }
    spans.push(Span::raw(format!(
        "  {} ETA {}",
        duration(app.view.elapsed().as_secs_f64()),
        eta
    )));
    if app.mode == Mode::Attached {
        spans.push(Span::styled("  attached", look.dim()));
    }
    let (label, style) = state_label(app);
    let cols = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(label.len() as u16 + 3),
    ])
    .split(area);
    // The run's name gives way first: the person knows which run this is,
    // but not how far it is (the stage's progress and ETA come last).
    let rest: usize = spans[1..].iter().map(|s| s.content.chars().count()).sum();
    let room = (cols[0].width as usize).saturating_sub(rest).clamp(8, 28);
    if spans[0].content.chars().count() > room {
        let cut: String = spans[0].content.chars().take(room - 3).collect();
        spans[0] = Span::styled(format!("{cut}..."), bold);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), cols[0]);
    frame.render_widget(
        Paragraph::new(Span::styled(format!(" [{label}]"), style)).alignment(Alignment::Right),
        cols[1],
    );
}

pub(super) fn best_line(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    let mut spans = vec![Span::styled("best so far ", look.dim())];
    match &app.view.best {
        Some(m) => {
            let psnr = m.fitness().unwrap_or(f64::NAN);
            spans.push(Span::styled(format!("{psnr:.3} dB"), look.good()));
            spans.push(Span::raw(crate::format::vs_bicubic_note(
                psnr,
                app.view.run.bicubic_psnr,
            )));
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

pub(super) fn footer(frame: &mut Frame, area: Rect, app: &App) {
    let look = &app.look;
    if let Some(flash) = &app.flash {
        frame.render_widget(
            Paragraph::new(Span::styled(flash.clone(), look.attention())),
            area,
        );
        return;
    }
    let keys = footer_keys(app.stage(), app.view.paused());
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
