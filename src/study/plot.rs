//! The study's scatter plot (`study.png`): fitness against the reference
//! training, both as dB over bicubic, each repeated architecture with its
//! seed-noise standard deviation as a horizontal error bar.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::StudyReport;

/// DejaVu Sans (Bitstream Vera licence, see assets/ATTRIBUTION.md): plotters'
/// ab_glyph text needs a font, and the machine's fonts cannot be relied on.
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font as plotters' `sans-serif` once per process.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known good; a failure would only
        // lose the labels, never the plot's points.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Draws the scatter of a report into a PNG at `path`.
pub fn scatter(report: &StudyReport, path: &Path) -> Result<()> {
    register_font();
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    let points: Vec<(f64, f64, f64)> = report
        .rows
        .iter()
        .filter_map(|r| {
            Some((
                r.fitness_over_bicubic?,
                r.reference_over_bicubic?,
                r.fitness_sd.unwrap_or(0.0),
            ))
        })
        .collect();
    let range = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        if !lo.is_finite() {
            return -1.0..1.0;
        }
        let pad = ((hi - lo) * 0.1).max(0.05);
        (lo - pad)..(hi + pad)
    };
    let xr = range(&mut points.iter().flat_map(|p| [p.0 - p.2, p.0 + p.2]));
    let yr = range(&mut points.iter().map(|p| p.1));
    let title = format!(
        "fitness vs reference: Spearman {}, Kendall {}, noise/spread {}",
        fmt(report.spearman, 2),
        fmt(report.kendall_tau_b, 2),
        fmt(report.noise_ratio(), 2)
    );
    // A temporary file renamed into place: a kill never leaves half a PNG.
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (900, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(xr, yr)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "fitness ({} steps): dB over bicubic ({:.2} dB)",
                report.plan.fitness.steps, report.plan.bicubic_psnr
            ))
            .y_desc(format!(
                "reference ({} steps): dB over bicubic",
                report.plan.reference.steps
            ))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(points.iter().filter(|p| p.2 > 0.0).map(|&(x, y, sd)| {
                // Horizontal bar: the fitness's seed noise (± one SD).
                PathElement::new(vec![(x - sd, y), (x + sd, y)], BLUE.stroke_width(2))
            }))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y, _)| Circle::new((x, y), 4, BLUE.filled())),
            )
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "n/a".into())
}
