//! `pareto.png` and `progress.png`, drawn with plotters into memory, encoded
//! as PNG and written atomically (a reader never sees half an image).
//!
//! The font is DejaVu Sans compiled into the binary (`assets/fonts`), so the
//! charts look the same on machines without system fonts.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::inputs::RunInputs;
use super::pareto::pareto_front;
use crate::search::Status;

/// Width of both charts, pixels.
pub const WIDTH: u32 = 1000;
/// Height of both charts, pixels.
pub const HEIGHT: u32 = 700;

const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family plotters' own defaults (legends, meshes) ask for.
const FAMILY: &str = "sans-serif";
const CAPTION_PX: u32 = 24;
const AXIS_PX: u32 = 19;
const LABEL_PX: u32 = 16;

/// Registers the embedded font with plotters, once per process.
fn font() -> Result<&'static str> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if !ok {
        bail!("the embedded chart font (assets/fonts/DejaVuSans.ttf) could not be read");
    }
    Ok(FAMILY)
}

/// A chart's vertical axis: dB over bicubic when bicubic is known, else PSNR.
struct Scale {
    base: f64,
    relative: bool,
}

impl Scale {
    fn of(run: &RunInputs) -> Scale {
        match run.bicubic.psnr() {
            Some(base) => Scale {
                base,
                relative: true,
            },
            None => Scale {
                base: 0.0,
                relative: false,
            },
        }
    }

    fn y(&self, psnr: f64) -> f64 {
        psnr - self.base
    }

    fn label(&self) -> String {
        if self.relative {
            format!(
                "validation PSNR over bicubic, dB (bicubic {:.2} dB)",
                self.base
            )
        } else {
            "validation PSNR, dB (bicubic unknown)".into()
        }
    }
}

/// A range around `values` with some room, never empty.
fn padded(values: impl IntoIterator<Item = f64>, room: f64, min_width: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let width = (hi - lo).max(min_width);
    let mid = (lo + hi) / 2.0;
    let half = width / 2.0 * (1.0 + room);
    (mid - half, mid + half)
}

/// Draws into an RGB buffer with `draw`, then writes it to `path` as PNG.
fn write_png(
    path: &Path,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    let img = image::RgbImage::from_raw(WIDTH, HEIGHT, buf).expect("buffer of the chart's size");
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .with_context(|| format!("cannot encode {}", path.display()))?;
    crate::fsutil::atomic_write(path, png.get_ref())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart failed: {e}")
}

/// `pareto.png`: every evaluated member's fitness against its Multi-Adds,
/// the Pareto front, the elites and the finalists.
pub fn pareto_png(run: &RunInputs, path: &Path) -> Result<()> {
    let family = font()?;
    let scale = Scale::of(run);
    let g = |ma: u64| ma as f64 / 1e9;
    let evaluated: Vec<(f64, f64)> = run
        .state
        .history
        .iter()
        .filter(|m| matches!(m.status, Status::Evaluated(_)))
        .filter_map(|m| Some((g(m.multi_adds), scale.y(m.fitness()?))))
        .collect();
    let front = pareto_front(&evaluated);
    let elites: Vec<(f64, f64)> = run
        .state
        .elites
        .iter()
        .filter_map(|m| Some((g(m.multi_adds), scale.y(m.fitness()?))))
        .collect();
    let finalists_search: Vec<(f64, f64)> = run
        .finals
        .iter()
        .map(|f| (g(f.multi_adds), scale.y(f.fitness_psnr)))
        .collect();
    let finalists_full: Vec<(f64, f64)> = run
        .finals
        .iter()
        .map(|f| (g(f.multi_adds), scale.y(f.val_psnr)))
        .collect();

    let all = || {
        evaluated
            .iter()
            .chain(&elites)
            .chain(&finalists_search)
            .chain(&finalists_full)
    };
    let (x0, x1) = padded(all().map(|p| p.0), 0.1, 0.02);
    let x0 = x0.max(0.0);
    let (y0, y1) = padded(all().map(|p| p.1), 0.15, 0.2);
    let (legend, (y0, y1)) = legend_place(all().copied(), (x0, x1), (y0, y1));
    let title = format!(
        "{}: {} evaluated networks (budget {}..{} params)",
        run.name,
        evaluated.len(),
        crate::format::thousands(run.config.range.min_params),
        crate::format::thousands(run.config.range.max_params)
    );

    write_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (family, CAPTION_PX))
            .margin(24)
            .x_label_area_size(64)
            .y_label_area_size(84)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("Multi-Adds, G (one 1280x720 output)")
            .y_desc(scale.label())
            .axis_desc_style((family, AXIS_PX))
            .label_style((family, LABEL_PX))
            .x_label_formatter(&|v| format!("{v:.2}"))
            .y_label_formatter(&|v| format!("{v:+.2}"))
            .draw()
            .map_err(plot_error)?;
        if scale.relative && y0 < 0.0 && y1 > 0.0 {
            chart
                .draw_series(LineSeries::new(
                    [(x0, 0.0), (x1, 0.0)],
                    BLACK.mix(0.6).stroke_width(2),
                ))
                .map_err(plot_error)?
                .label("bicubic")
                .legend(|(x, y)| {
                    PathElement::new([(x - 10, y), (x + 10, y)], BLACK.stroke_width(2))
                });
        }
        let grey_blue = RGBColor(70, 110, 170);
        chart
            .draw_series(
                evaluated
                    .iter()
                    .map(|&p| Circle::new(p, 4, grey_blue.mix(0.55).filled())),
            )
            .map_err(plot_error)?
            .label("evaluated (quick-trained)")
            .legend(move |(x, y)| Circle::new((x, y), 4, grey_blue.filled()));
        if front.len() > 1 {
            let green = RGBColor(30, 140, 70);
            chart
                .draw_series(LineSeries::new(staircase(&front), green.stroke_width(2)))
                .map_err(plot_error)?
                .label("Pareto front")
                .legend(move |(x, y)| {
                    PathElement::new([(x - 10, y), (x + 10, y)], green.stroke_width(2))
                });
        }
        let orange = RGBColor(235, 140, 0);
        chart
            .draw_series(
                elites
                    .iter()
                    .map(|&p| Circle::new(p, 8, orange.stroke_width(3))),
            )
            .map_err(plot_error)?
            .label("elites")
            .legend(move |(x, y)| Circle::new((x, y), 7, orange.stroke_width(3)));
        if !run.finals.is_empty() {
            let red = RGBColor(200, 30, 30);
            chart
                .draw_series(
                    finalists_search
                        .iter()
                        .map(|&p| TriangleMarker::new(p, 10, red.filled())),
                )
                .map_err(plot_error)?
                .label("finalists (search fitness)")
                .legend(move |(x, y)| TriangleMarker::new((x, y), 8, red.filled()));
            let purple = RGBColor(120, 40, 160);
            chart
                .draw_series(
                    finalists_full
                        .iter()
                        .map(|&p| Cross::new(p, 9, purple.stroke_width(3))),
                )
                .map_err(plot_error)?
                .label("finalists, fully trained")
                .legend(move |(x, y)| Cross::new((x, y), 7, purple.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((family, LABEL_PX))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// Where the legend goes: the corner of the plot where it hides no point
/// (it covers less than 38% of the width and of the height), upper left
/// first; when every corner holds a point, the vertical range grows upwards
/// until the upper corners are empty. Returns the position and the range.
fn legend_place(
    points: impl Iterator<Item = (f64, f64)> + Clone,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> (SeriesLabelPosition, (f64, f64)) {
    // Upper left first: above and left of a Pareto front nothing lies.
    let corners = [
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let hides = |right: bool, upper: bool| {
        points.clone().any(|(x, y)| {
            let fx = (x - x0) / (x1 - x0);
            let fy = (y - y0) / (y1 - y0);
            (if right { fx > 0.62 } else { fx < 0.38 })
                && (if upper { fy > 0.62 } else { fy < 0.38 })
        })
    };
    match corners
        .iter()
        .find(|(_, right, upper)| !hides(*right, *upper))
    {
        Some((corner, _, _)) => (corner.clone(), (y0, y1)),
        None => (SeriesLabelPosition::UpperLeft, (y0, y0 + (y1 - y0) / 0.6)),
    }
}

/// The front as steps: a network's quality holds until a costlier one beats it.
fn staircase(front: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut steps = Vec::with_capacity(front.len() * 2);
    for (i, &p) in front.iter().enumerate() {
        if i > 0 {
            steps.push((p.0, front[i - 1].1));
        }
        steps.push(p);
    }
    steps
}

/// Points of a line chart, (x, y).
type Points = Vec<(f64, f64)>;

/// Best and mean (x, y) per completed generation, x counted from 1.
fn progress_points(
    summaries: &[crate::search::GenerationSummary],
    y: impl Fn(f64) -> f64,
) -> (Points, Points) {
    let at = |s: &crate::search::GenerationSummary, v: Option<f64>| {
        v.map(|v| ((s.generation + 1) as f64, y(v)))
    };
    (
        summaries.iter().filter_map(|s| at(s, s.best)).collect(),
        summaries.iter().filter_map(|s| at(s, s.mean)).collect(),
    )
}

/// The x range of `generations` completed generations, 1 to the last, with
/// a margin.
fn generation_axis(generations: usize) -> (f64, f64) {
    (0.7, generations.max(1) as f64 + 0.3)
}

/// A generation's tick label: whole generations from 1 only.
fn generation_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 && v >= 1.0 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// `progress.png`: best and mean fitness per completed generation, the
/// generations counted from 1 as the dashboard and `history.csv` say them.
pub fn progress_png(run: &RunInputs, path: &Path) -> Result<()> {
    let family = font()?;
    let scale = Scale::of(run);
    let summaries = &run.state.summaries;
    let (best, mean) = progress_points(summaries, |f| scale.y(f));
    let (x0, x1) = generation_axis(summaries.len());
    let (y0, y1) = padded(best.iter().chain(&mean).map(|p| p.1), 0.2, 0.2);
    let (legend, (y0, y1)) = legend_place(best.iter().chain(&mean).copied(), (x0, x1), (y0, y1));
    let title = if summaries.is_empty() {
        format!("{}: no generation completed yet", run.name)
    } else {
        format!(
            "{}: fitness per generation ({} of {})",
            run.name,
            summaries.len(),
            run.config.policy.num_generation
        )
    };
    let gens = summaries.len().max(1);

    write_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (family, CAPTION_PX))
            .margin(24)
            .x_label_area_size(64)
            .y_label_area_size(84)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("generation")
            .y_desc(scale.label())
            .axis_desc_style((family, AXIS_PX))
            .label_style((family, LABEL_PX))
            .x_labels(gens.min(20) + 1)
            .x_label_formatter(&|v| generation_label(*v))
            .y_label_formatter(&|v| format!("{v:+.2}"))
            .draw()
            .map_err(plot_error)?;
        if scale.relative && y0 < 0.0 && y1 > 0.0 {
            chart
                .draw_series(LineSeries::new(
                    [(x0, 0.0), (x1, 0.0)],
                    BLACK.mix(0.6).stroke_width(2),
                ))
                .map_err(plot_error)?
                .label("bicubic")
                .legend(|(x, y)| {
                    PathElement::new([(x - 10, y), (x + 10, y)], BLACK.stroke_width(2))
                });
        }
        let red = RGBColor(200, 30, 30);
        let blue = RGBColor(40, 90, 180);
        for (points, color, name) in [(&best, red, "best"), (&mean, blue, "mean")] {
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(3),
                ))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new([(x - 10, y), (x + 10, y)], color.stroke_width(3))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((family, LABEL_PX))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

/// `compare.png`: each run's best fitness so far against trained members
/// (thin), and each strategy's mean up to the common budget (thick).
pub fn compare_png(cmp: &super::compare::Comparison, path: &Path) -> Result<()> {
    let family = font()?;
    let max_x = cmp
        .runs
        .iter()
        .map(|r| r.evaluations)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (y0, y1) = padded(
        cmp.runs.iter().flat_map(|r| r.points.iter().map(|p| p.2)),
        0.1,
        0.2,
    );
    let color = |strategy: &str| {
        if strategy == "random" {
            RGBColor(40, 90, 180)
        } else {
            RGBColor(200, 30, 30)
        }
    };
    write_png(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "best fitness so far: evolution against random search",
                (family, CAPTION_PX),
            )
            .margin(24)
            .x_label_area_size(64)
            .y_label_area_size(84)
            .build_cartesian_2d(0.0..max_x + 0.5, y0..y1)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("members trained")
            .y_desc("best validation PSNR so far, dB")
            .axis_desc_style((family, AXIS_PX))
            .label_style((family, LABEL_PX))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .draw()
            .map_err(plot_error)?;
        for r in &cmp.runs {
            let c = color(&r.strategy);
            chart
                .draw_series(LineSeries::new(
                    r.points.iter().map(|p| (p.0 as f64, p.2)),
                    c.mix(0.35).stroke_width(1),
                ))
                .map_err(plot_error)?;
        }
        for strategy in ["evolution", "random"] {
            let runs: Vec<_> = cmp.runs.iter().filter(|r| r.strategy == strategy).collect();
            if runs.is_empty() {
                continue;
            }
            let mean: Vec<(f64, f64)> = (1..=cmp.common_evaluations)
                .filter_map(|e| {
                    let v: Vec<f64> = runs.iter().filter_map(|r| r.best_at(e)).collect();
                    (v.len() == runs.len())
                        .then(|| (e as f64, v.iter().sum::<f64>() / v.len() as f64))
                })
                .collect();
            let c = color(strategy);
            chart
                .draw_series(LineSeries::new(mean, c.stroke_width(4)))
                .map_err(plot_error)?
                .label(format!("{strategy} (mean of {})", runs.len()))
                .legend(move |(x, y)| {
                    PathElement::new([(x - 10, y), (x + 10, y)], c.stroke_width(4))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((family, LABEL_PX))
            .draw()
            .map_err(plot_error)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_generations_from_one() {
        let summary = |generation: usize, best: f64| crate::search::GenerationSummary {
            generation,
            best: Some(best),
            mean: Some(best - 1.0),
            elites: Vec::new(),
        };
        let (best, mean) = progress_points(&[summary(0, 30.0), summary(1, 31.0)], |v| v);
        assert_eq!(best, [(1.0, 30.0), (2.0, 31.0)]);
        assert_eq!(mean, [(1.0, 29.0), (2.0, 30.0)]);
        let (x0, x1) = generation_axis(2);
        assert!(x0 < 1.0 && x0 > 0.0 && x1 > 2.0, "{x0}..{x1}");
        let labels: Vec<String> = [0.0, 1.0, 1.5, 2.0].map(generation_label).to_vec();
        assert_eq!(labels, ["", "1", "", "2"]);
    }

    #[test]
    fn padded_ranges_are_never_empty() {
        assert_eq!(padded([], 0.1, 1.0), (0.0, 1.0));
        let (lo, hi) = padded([2.0], 0.0, 1.0);
        assert_eq!((lo, hi), (1.5, 2.5));
        let (lo, hi) = padded([1.0, 3.0, f64::NAN], 0.5, 0.1);
        assert_eq!((lo, hi), (0.5, 3.5));
    }

    #[test]
    fn the_legend_goes_where_it_hides_no_point() {
        let at =
            |points: &[(f64, f64)]| legend_place(points.iter().copied(), (0.0, 1.0), (0.0, 1.0));
        assert_eq!(at(&[]), (SeriesLabelPosition::UpperLeft, (0.0, 1.0)));
        assert_eq!(
            at(&[(0.1, 0.9), (0.5, 0.5)]),
            (SeriesLabelPosition::UpperRight, (0.0, 1.0))
        );
        assert_eq!(
            at(&[(0.1, 0.9), (0.9, 0.9)]),
            (SeriesLabelPosition::LowerRight, (0.0, 1.0))
        );
        // Every corner taken: room is made above the points.
        let (corner, (lo, hi)) = at(&[(0.1, 0.9), (0.9, 0.9), (0.1, 0.1), (0.9, 0.1)]);
        assert_eq!(corner, SeriesLabelPosition::UpperLeft);
        assert_eq!(lo, 0.0);
        assert!((0.9 - lo) / (hi - lo) < 0.62, "{hi}");
    }

    #[test]
    fn the_front_is_drawn_as_steps() {
        assert_eq!(
            staircase(&[(1.0, 5.0), (2.0, 6.0), (4.0, 7.0)]),
            vec![(1.0, 5.0), (2.0, 5.0), (2.0, 6.0), (4.0, 6.0), (4.0, 7.0)]
        );
        assert!(staircase(&[]).is_empty());
    }
}
