//! Bicubic upscaling as the reference every fitness is read against: a
//! quick-trained network's validation PSNR means little alone (24 dB looks
//! fine until bicubic scores 29 dB on the same images), so the run's view
//! shows each fitness also as dB over bicubic, and the end of a search says
//! plainly which side of bicubic its best network is on.

use super::RunView;
use crate::format::signed_db;
use crate::search::Member;

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
