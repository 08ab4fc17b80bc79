//! Windows drawn over the panes: help, confirmations and prompts.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::detail::detail_overlay;
use super::widgets::pane_block;
use crate::tui::app::{App, Input, Mode, Overlay};
use crate::tui::format::thousands;
use crate::tui::keys::help_lines;
use crate::tui::look::Look;
use crate::tui::validate::check_genes;

/// A rectangle of at most `w`x`h` centred in `area`.
pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub(super) fn popup(frame: &mut Frame, rect: Rect, title: &str, text: Text<'static>, look: &Look) {
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(pane_block(format!(" {title} "), true, look)),
        rect,
    );
}

pub(super) fn key_line(look: &Look, keys: &str, what: &str) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{keys:<12}"), look.key()),
        Span::raw(what.to_string()),
    ])
}

pub(super) fn draw_overlay(frame: &mut Frame, area: Rect, app: &App, overlay: &Overlay) {
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
                        Span::styled("y/Ctrl-C", look.key()),
                        Span::raw(" stop and checkpoint   "),
                        Span::styled("n/Esc", look.key()),
                        Span::raw(" keep watching"),
                    ]),
                ],
                Mode::Attached => vec![
                    Line::from("Leave the dashboard. Stop the search too?"),
                    Line::from(""),
                    Line::from(vec![
                        Span::styled("y/Ctrl-C", look.key()),
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

pub(super) fn prompt_line(input: &Input, look: &Look) -> Line<'static> {
    Line::from(vec![
        Span::styled("> ", look.key()),
        Span::raw(input.text.clone()),
        Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
    ])
}

/// The inline error, or a preview of what Enter would do.
pub(super) fn feedback(
    input: &Input,
    look: &Look,
    preview: impl Fn() -> Option<String>,
) -> Vec<Line<'static>> {
    match &input.error {
        Some(e) if input.refused => vec![Line::from(Span::styled(
            format!("not sent: {e}"),
            look.error(),
        ))],
        Some(e) => vec![Line::from(Span::styled(e.clone(), look.error()))],
        None => match preview() {
            Some(p) => vec![Line::from(Span::styled(p, look.good()))],
            None => vec![Line::from("")],
        },
    }
}
