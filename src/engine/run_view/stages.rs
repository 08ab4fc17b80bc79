//! What a viewer knows of the pipeline's stages after the search: the
//! fully-training finalists and the benchmark rows, from their events.

use std::collections::BTreeMap;

use super::{RunState, RunView};
use crate::engine::events::Event;

/// A finalist as its events tell it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FinalLive {
    /// Its genes.
    pub genes: Vec<String>,
    /// Exact params.
    pub params: u64,
    /// Device it trains on.
    pub device: String,
    /// Steps done.
    pub step: usize,
    /// Steps planned.
    pub steps: usize,
    /// Last training loss.
    pub loss: Option<f64>,
    /// Estimated seconds left.
    pub eta_seconds: Option<f64>,
    /// (step, loss) points.
    pub curve: Vec<(f64, f64)>,
    /// (step, validation PSNR) points.
    pub val: Vec<(f64, f64)>,
    /// Bicubic PSNR on the validation images.
    pub bicubic_psnr: f64,
    /// Final (PSNR, SSIM) once trained.
    pub result: Option<(f64, f64)>,
    /// Its weights file once trained.
    pub model: Option<String>,
    /// True while it trains.
    pub training: bool,
}

impl FinalLive {
    /// The latest validation PSNR (final when trained).
    pub fn psnr(&self) -> Option<f64> {
        self.result
            .map(|r| r.0)
            .or_else(|| self.val.last().map(|v| v.1))
    }
}

/// One benchmark row: a method's means on one set.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRowView {
    /// Set name.
    pub set: String,
    /// Images.
    pub images: usize,
    /// Finalist rank; `None` for bicubic.
    pub rank: Option<usize>,
    /// Mean PSNR.
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
}

/// The stages after the search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StagesView {
    /// Stages seen, in order, with whether each is done.
    pub stages: Vec<(String, bool)>,
    /// The stage running now, or the last one.
    pub current: Option<String>,
    /// Its place in the pipeline: (0-based index, stages in all).
    pub position: Option<(usize, usize)>,
    /// Finalists by rank.
    pub finals: BTreeMap<usize, FinalLive>,
    /// Benchmark rows in arrival order.
    pub bench: Vec<BenchRowView>,
    /// Set once the pipeline ended: (complete, model, report).
    pub done: Option<(bool, Option<String>, Option<String>)>,
}

impl StagesView {
    /// True once a stage after the search has started: the dashboard then
    /// shows the stages instead of the search.
    pub fn after_search(&self) -> bool {
        self.current.as_deref().is_some_and(|s| s != "search")
    }

    /// The current stage's own progress, for a header: `finals 1/2 45%`
    /// while fully training, the rows so far while benchmarking.
    pub fn progress(&self) -> Option<String> {
        match self.current.as_deref()? {
            "fully_train" if !self.finals.is_empty() => {
                let done = self.finals.values().filter(|f| f.result.is_some()).count();
                let (step, steps) = self
                    .finals
                    .values()
                    .fold((0, 0), |(a, b), f| (a + f.step.min(f.steps), b + f.steps));
                let pct = (100 * step).checked_div(steps).unwrap_or(0);
                Some(format!("finals {done}/{} {pct}%", self.finals.len()))
            }
            s if s.starts_with("benchmark") && !self.bench.is_empty() => {
                Some(format!("rows {}", self.bench.len()))
            }
            _ => None,
        }
    }

    /// Time left in the current stage, as far as its events tell it: the
    /// longest of the finalists' own estimates while fully training (they
    /// train side by side on the devices); unknown in the other stages.
    pub fn eta(&self) -> Option<std::time::Duration> {
        if self.current.as_deref()? != "fully_train" {
            return None;
        }
        self.finals
            .values()
            .filter(|f| f.training)
            .filter_map(|f| f.eta_seconds)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .max_by(f64::total_cmp)
            .map(std::time::Duration::from_secs_f64)
    }
}

/// Loss points kept per finalist before thinning.
const POINTS: usize = 600;

impl RunView {
    /// The stage events' part of [`RunView::apply`].
    pub(super) fn apply_stage(&mut self, event: &Event) {
        let s = &mut self.stages;
        match event {
            Event::StageStarted {
                stage,
                index,
                stages,
            } => {
                if !s.stages.iter().any(|(n, _)| n == stage) {
                    s.stages.push((stage.clone(), false));
                }
                s.current = Some(stage.clone());
                s.position = Some((*index, *stages));
                if stage != "search" {
                    self.state = RunState::Running;
                    self.paused = false;
                }
                self.note("info", format!("stage {}/{stages}: {stage}", index + 1));
            }
            Event::StageDone { stage, seconds } => {
                match s.stages.iter_mut().find(|(n, _)| n == stage) {
                    Some(entry) => entry.1 = true,
                    None => s.stages.push((stage.clone(), true)),
                }
                // The search's end was told by its `Finished` ("search
                // finished in ..."), on the run's clock: one sentence, one time.
                if stage != "search" {
                    self.note(
                        "info",
                        format!("{stage} done in {}", crate::format::duration(*seconds)),
                    );
                }
            }
            Event::FinalStarted {
                rank,
                genes,
                params,
                step,
                steps,
                device,
                bicubic_psnr,
                ..
            } => {
                let f = s.finals.entry(*rank).or_default();
                f.genes = genes.clone();
                f.params = *params;
                f.step = *step;
                f.steps = *steps;
                f.device = device.clone();
                f.bicubic_psnr = *bicubic_psnr;
                f.training = true;
                let from = if *step > 0 {
                    format!(" from step {step}")
                } else {
                    String::new()
                };
                self.note(
                    "info",
                    format!(
                        "fully training #{rank} on {device}{from}: {}",
                        genes.join(" ")
                    ),
                );
            }
            Event::FinalProgress {
                rank,
                step,
                steps,
                loss,
                eta_seconds,
            } => {
                let f = s.finals.entry(*rank).or_default();
                f.step = *step;
                f.steps = *steps;
                f.loss = Some(*loss);
                f.eta_seconds = Some(*eta_seconds);
                f.training = true;
                if loss.is_finite() {
                    f.curve.push((*step as f64, *loss));
                    if f.curve.len() > POINTS {
                        let mut i = 0;
                        f.curve.retain(|_| {
                            i += 1;
                            i % 2 == 0
                        });
                    }
                }
            }
            Event::FinalValidated { rank, step, psnr } => {
                let f = s.finals.entry(*rank).or_default();
                f.val.push((*step as f64, *psnr));
            }
            Event::FinalDone {
                rank,
                psnr,
                ssim,
                bicubic_psnr,
                model,
                ..
            } => {
                let f = s.finals.entry(*rank).or_default();
                f.result = Some((*psnr, *ssim));
                f.bicubic_psnr = *bicubic_psnr;
                f.model = Some(model.clone());
                f.training = false;
                f.eta_seconds = None;
                f.step = f.step.max(f.steps);
                self.note(
                    "info",
                    format!(
                        "#{rank} fully trained: {psnr:.3} dB ({:+.3} dB over bicubic)",
                        psnr - bicubic_psnr
                    ),
                );
            }
            Event::BenchRow {
                set,
                images,
                rank,
                psnr,
                ssim,
            } => s.bench.push(BenchRowView {
                set: set.clone(),
                images: *images,
                rank: *rank,
                psnr: *psnr,
                ssim: *ssim,
            }),
            Event::PipelineDone {
                complete,
                model,
                report,
                stopped_after,
            } => {
                // The clock stops with the pipeline, at the time of this event.
                self.tick();
                let s = &mut self.stages;
                s.done = Some((*complete, model.clone(), report.clone()));
                for f in s.finals.values_mut() {
                    f.training = false;
                }
                self.state = if *complete {
                    RunState::Finished
                } else {
                    RunState::Stopped
                };
                let text = if let Some(stage) = stopped_after {
                    format!(
                        "stopped after {stage} (--stop-after): the later stages wait for esr-ea search --resume {}; q to leave",
                        self.run_dir_text()
                    )
                } else if *complete {
                    match model {
                        Some(m) => format!("pipeline finished: model {m}; q to leave"),
                        None => "pipeline finished: q to leave".into(),
                    }
                } else {
                    format!(
                        "stopped and checkpointed: resume with esr-ea search --resume {}",
                        self.run_dir_text()
                    )
                };
                self.note("info", text);
            }
            _ => {}
        }
    }
}
