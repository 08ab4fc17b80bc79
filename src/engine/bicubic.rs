//! Bicubic upscaling as the reference every fitness is read against: a
//! quick-trained network's validation PSNR means little alone (24 dB looks
//! fine until bicubic scores 29 dB on the same images), so the search's
//! outputs show each fitness also as dB over bicubic, and the end of a search
//! says plainly which side of bicubic its best network is on.

use super::run_view::RunView;
use crate::search::Member;

/// `psnr` as dB over `bicubic`, signed with two decimals: `+0.45`, `-4.12`.
pub fn signed_db(psnr: f64, bicubic: f64) -> String {
    format!("{:+.2}", psnr - bicubic)
}

/// `+0.45 dB vs bicubic`: a fitness against the reference, for text lines.
pub fn vs_bicubic(psnr: f64, bicubic: f64) -> String {
    format!("{} dB vs bicubic", signed_db(psnr, bicubic))
}

/// ` (+0.45 dB vs bicubic)` when the reference is known, else nothing: for
/// lines that read the same without it.
pub fn vs_bicubic_note(psnr: f64, bicubic: Option<f64>) -> String {
    match bicubic {
        Some(b) if psnr.is_finite() => format!(" ({})", vs_bicubic(psnr, b)),
        _ => String::new(),
    }
}

/// The end-of-search sentence about the best quick-trained network `best`
/// of the run in `run_dir`: how far below bicubic it still is and what to
/// do about it, or how far above. `None` when it has no fitness.
pub fn verdict(best: &Member, bicubic: f64, run_dir: &str) -> Option<String> {
    let psnr = best.fitness()?;
    let gap = psnr - bicubic;
    let head = format!(
        "best quick-trained network #{}: {psnr:.3} dB on the validation images",
        best.id
    );
    Some(if gap < 0.0 {
        format!(
            "{head}, still {:.2} dB below bicubic ({bicubic:.3} dB): fitness training is short; \
             fully train it with `esr-ea train --config {run_dir}/config.yaml --model {run_dir}/export/1.safetensors --out {run_dir}/trained` \
             or run the pipeline (fully_train stage: `esr-ea search --resume {run_dir}`)",
            -gap
        )
    } else {
        format!(
            "{head}, {gap:.2} dB above bicubic ({bicubic:.3} dB) after quick training alone; \
             full training (the pipeline's fully_train stage, or `esr-ea train`) adds more"
        )
    })
}

/// The bicubic PSNR of a run's fitness validation images (`nas.dataset.test`
/// of `config`), scored as the fitness is: for a run saved without it.
pub fn of_config(config: &crate::config::Config) -> anyhow::Result<f64> {
    let scale = config.search_space.scale;
    let val = crate::train::datasets::load_for(
        &config.dataset.test,
        scale,
        crate::train::datasets::Role::Scoring,
    )?;
    Ok(crate::train::trainer::bicubic_psnr(&val, scale)?)
}

impl RunView {
    /// The end-of-search sentence ([`verdict`]) for this run's best member,
    /// when the run told its bicubic PSNR.
    pub fn bicubic_verdict(&self) -> Option<String> {
        let bicubic = self.run.bicubic_psnr?;
        let best = self.elites.first().or(self.best.as_ref())?;
        verdict(best, bicubic, &self.run_dir_text())
    }

    /// A fitness as a signed dB-over-bicubic cell (`+0.45`), `-` when either
    /// is unknown.
    pub fn over_bicubic_cell(&self, psnr: Option<f64>) -> String {
        match (psnr, self.run.bicubic_psnr) {
            (Some(p), Some(b)) => signed_db(p, b),
            _ => "-".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Event;
    use crate::search::{Evaluation, Status};

    fn evaluated(mut m: Member, psnr: f64) -> Member {
        m.status = Status::Evaluated(Evaluation {
            psnr,
            ssim: 0.8,
            final_loss: None,
            seconds: 1.0,
            latency_ms: None,
            checkpoint_losses: Vec::new(),
        });
        m
    }

    fn member() -> Member {
        let problem = crate::search::Problem::new(
            crate::space::SearchSpace::default(),
            crate::search::Policy::default(),
            crate::search::Range {
                node_num: 10,
                min_active: 4,
                max_params: 160_000,
                min_params: 100_000,
            },
        )
        .unwrap();
        crate::search::Search::new(problem, 1)
            .unwrap()
            .state
            .population[0]
            .clone()
    }

    fn started(bicubic_psnr: Option<f64>) -> Event {
        Event::RunStarted {
            run: "r".into(),
            devices: vec!["cpu".into()],
            generations: 1,
            individuals: 1,
            min_params: 1,
            max_params: 2,
            resumed: bicubic_psnr.is_none(),
            bicubic_psnr,
        }
    }

    #[test]
    fn signs_and_rounding() {
        assert_eq!(signed_db(29.6, 29.15), "+0.45");
        assert_eq!(signed_db(25.0, 29.13), "-4.13");
        assert_eq!(vs_bicubic(30.0, 29.0), "+1.00 dB vs bicubic");
        assert_eq!(vs_bicubic_note(30.0, None), "");
        assert_eq!(vs_bicubic_note(f64::NAN, Some(29.0)), "");
        assert_eq!(vs_bicubic_note(28.5, Some(29.0)), " (-0.50 dB vs bicubic)");
    }

    #[test]
    fn the_verdict_says_which_side_of_bicubic_and_what_next() {
        let below = verdict(&evaluated(member(), 28.2), 29.0, "runs/x").unwrap();
        assert!(
            below.contains("still 0.80 dB below bicubic (29.000 dB)"),
            "{below}"
        );
        assert!(
            below.contains(
                "esr-ea train --config runs/x/config.yaml --model runs/x/export/1.safetensors"
            ),
            "{below}"
        );
        assert!(below.contains("fully_train stage"), "{below}");
        let above = verdict(&evaluated(member(), 29.5), 29.0, "runs/x").unwrap();
        assert!(above.contains("0.50 dB above bicubic"), "{above}");
        assert!(!above.contains("below"), "{above}");
        assert_eq!(verdict(&member(), 29.0, "runs/x"), None, "no fitness");
    }

    #[test]
    fn the_run_view_keeps_the_line_and_logs_the_verdict_at_the_end() {
        let mut view = RunView::default();
        view.apply(&started(Some(29.0)));
        assert_eq!(view.run.bicubic_psnr, Some(29.0));
        // A later start that names none (an older writer) keeps it.
        view.apply(&started(None));
        assert_eq!(view.run.bicubic_psnr, Some(29.0));
        let best = evaluated(member(), 28.5);
        assert_eq!(view.over_bicubic_cell(best.fitness()), "-0.50");
        assert_eq!(view.over_bicubic_cell(None), "-");
        view.apply(&Event::Finished {
            complete: true,
            elites: vec![best],
            cache_hits: 0,
        });
        let log: Vec<&str> = view.log.iter().map(|l| l.text.as_str()).collect();
        assert!(
            log.iter()
                .any(|l| l.contains("still 0.50 dB below bicubic")),
            "{log:?}"
        );
        // Old event lines without the field still read.
        let old = r#"{"event":"run_started","run":"r","devices":["cpu"],"generations":1,"individuals":1,"min_params":1,"max_params":2,"resumed":false}"#;
        let e: Event = serde_json::from_str(old).unwrap();
        assert!(matches!(
            e,
            Event::RunStarted {
                bicubic_psnr: None,
                ..
            }
        ));
    }
}
