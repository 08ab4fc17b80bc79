//! Headless front end: readable progress lines from the engine's events.
//! Pure state + text, so it is tested without a terminal.

use std::collections::HashMap;

use crate::engine::clock::RunClock;
use crate::engine::{Event, RunView};
use crate::format::{duration, plural, thousands};
use crate::format::{signed_db, vs_bicubic_note};
use crate::search::Status;

/// Turns events into lines of text; what it knows of the run is the
/// [`RunView`] the dashboard reads too, so both tell the same ETA.
#[derive(Default)]
pub struct Printer {
    view: RunView,
    steps_printed: HashMap<u64, usize>,
}

impl Printer {
    /// A printer for the run in `run_dir`, named in the lines that tell
    /// what to do next, whose search runs in this process: its times are
    /// the run's clock ([`RunClock`]), as on the dashboard and `attach`.
    pub fn for_run(run_dir: &std::path::Path) -> Printer {
        let mut printer = Printer::default();
        printer.view.set_run_clock(RunClock::of_run(run_dir));
        printer.view.run_dir = Some(run_dir.to_path_buf());
        printer
    }

    /// ` (+0.45 dB vs bicubic)` when the run told its bicubic PSNR.
    fn vs_bicubic(&self, psnr: f64) -> String {
        vs_bicubic_note(psnr, self.view.run.bicubic_psnr)
    }

    /// `[g1/3 2/8] #5`: generation and position of a member of the current one.
    fn tag(&self, id: u64) -> String {
        let members = &self.view.population;
        let pos = members.iter().position(|m| m.id == id);
        let (pos, of) = pos.map(|i| (i + 1, members.len())).unwrap_or((0, 0));
        format!(
            "[g{}/{} {pos}/{of}] #{id}",
            self.view.generation + 1,
            self.view.run.generations
        )
    }

    fn eta(&self) -> String {
        match self.view.eta() {
            Some(left) => format!("ETA {}", duration(left.as_secs_f64())),
            None => "ETA -".into(),
        }
    }

    /// The run's clock, as the view accounts it (stopped once the run ended).
    fn elapsed(&mut self) -> String {
        self.view.tick();
        duration(self.view.elapsed().as_secs_f64())
    }

    /// Lines for the stages after the search.
    fn stage_lines(&mut self, event: &Event) -> Vec<String> {
        let bicubic = |rank: &usize| {
            self.view
                .stages
                .finals
                .get(rank)
                .map_or(f64::NAN, |f| f.bicubic_psnr)
        };
        match event {
            Event::StageStarted {
                stage,
                index,
                stages,
            } => vec![format!("stage {}/{stages}: {stage}", index + 1)],
            // The search's end has its own line ("search finished in ...").
            Event::StageDone { stage, .. } if stage == "search" => vec![],
            Event::StageDone { stage, seconds } => {
                vec![format!("{stage} done in {}", duration(*seconds))]
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
                let from = if *step > 0 {
                    format!(", resuming at step {step}")
                } else {
                    String::new()
                };
                vec![format!(
                    "[final #{rank}] {} ({} params) training {steps} steps on {device}{from}; bicubic {bicubic_psnr:.3} dB",
                    genes.join(" "),
                    thousands(*params)
                )]
            }
            Event::FinalProgress {
                rank,
                step,
                steps,
                loss,
                eta_seconds,
            } => {
                // A line at every tenth of the training.
                let key = u64::MAX - *rank as u64;
                let tenth = (steps / 10).max(1);
                let last = self.steps_printed.get(&key).copied().unwrap_or(0);
                if *step / tenth > last / tenth || step == steps {
                    self.steps_printed.insert(key, *step);
                    vec![format!(
                        "[final #{rank}]   step {step}/{steps}  loss {loss:.5}  ETA {}",
                        duration(*eta_seconds)
                    )]
                } else {
                    vec![]
                }
            }
            Event::FinalValidated { rank, step, psnr } => vec![format!(
                "[final #{rank}]   step {step}: validation PSNR {psnr:.3} dB ({:+.3} dB over bicubic)",
                psnr - bicubic(rank)
            )],
            Event::FinalDone {
                rank,
                psnr,
                ssim,
                bicubic_psnr,
                seconds,
                model,
            } => vec![format!(
                "[final #{rank}] trained in {}: PSNR {psnr:.3} dB, SSIM {ssim:.4} ({:+.3} dB over bicubic {bicubic_psnr:.3}); {model}",
                duration(*seconds),
                psnr - bicubic_psnr
            )],
            Event::BenchRow {
                set,
                images,
                rank,
                psnr,
                ssim,
            } => {
                let method = rank.map_or_else(|| "bicubic".to_string(), |r| format!("#{r}"));
                vec![format!(
                    "benchmark {set} ({images} images): {method:<8} PSNR {psnr:.3} dB  SSIM {ssim:.4}"
                )]
            }
            Event::PipelineDone {
                complete,
                stopped_after,
                ..
            } => vec![if let Some(stage) = stopped_after {
                format!("stopped after {stage} (--stop-after), elapsed {}", self.elapsed())
            } else if *complete {
                format!("pipeline finished, elapsed {}", self.elapsed())
            } else {
                format!(
                    "pipeline stopped and checkpointed; resume it with esr-ea search --resume {}",
                    self.view.run_dir_text()
                )
            }],
            _ => vec![],
        }
    }

    /// The lines to print for one event (often none).
    pub fn handle(&mut self, event: &Event) -> Vec<String> {
        let new_generation = matches!(event, Event::Generation { generation, .. }
            if self.view.is_new_generation(*generation));
        self.view.apply(event);
        match event {
            Event::RunStarted {
                run,
                devices,
                generations,
                individuals,
                min_params,
                max_params,
                resumed,
                bicubic_psnr,
            } => {
                let bicubic = bicubic_psnr
                    .map(|b| {
                        format!("; bicubic {b:.3} dB on the validation images (the line to beat)")
                    })
                    .unwrap_or_default();
                vec![format!(
                    "{} run '{run}': {generations} generations x {individuals} individuals on {}, budget {}..{} params{bicubic}",
                    if *resumed { "resuming" } else { "starting" },
                    devices.join(","),
                    thousands(*min_params),
                    thousands(*max_params)
                )]
            }
            Event::Generation {
                generation,
                members,
            } => {
                if new_generation {
                    vec![format!(
                        "generation {}/{}: {} individuals",
                        generation + 1,
                        self.view.run.generations,
                        members.len()
                    )]
                } else {
                    vec![]
                }
            }
            Event::Started { id, device, steps } => {
                let m = self.view.population.iter().find(|m| m.id == *id);
                let training = match m.map(|m| &m.status) {
                    Some(Status::Promoted(rung)) => {
                        format!("continuing from step {} to {steps}", rung.step)
                    }
                    _ => format!("training {steps} steps"),
                };
                vec![format!(
                    "{} {} ({} blocks, {} params) {training} on {device}",
                    self.tag(*id),
                    m.map(|m| m.genes.to_string()).unwrap_or_default(),
                    m.map(|m| m.genes.len()).unwrap_or(0),
                    m.map(|m| thousands(m.params)).unwrap_or_default(),
                )]
            }
            Event::JobState {
                id,
                job,
                state,
                node,
                waited,
            } => {
                let on = if node.is_empty() {
                    String::new()
                } else {
                    format!(" on {node}")
                };
                vec![format!(
                    "{} Slurm job {job} {state}{on} ({waited:.1} s after submission)",
                    self.tag(*id)
                )]
            }
            Event::Progress {
                id,
                step,
                steps,
                loss,
                lr,
            } => {
                // A line at every quarter of the training.
                let quarter = (steps / 4).max(1);
                let last = self.steps_printed.get(id).copied().unwrap_or(0);
                if *step / quarter > last / quarter || step == steps {
                    self.steps_printed.insert(*id, *step);
                    vec![format!(
                        "{}   step {step}/{steps}  loss {loss:.5}  lr {lr:.2e}",
                        self.tag(*id)
                    )]
                } else {
                    vec![]
                }
            }
            Event::Evaluated { id, evaluation, .. } => {
                let latency = evaluation
                    .latency_ms
                    .map(|ms| format!("  latency {ms:.0} ms"))
                    .unwrap_or_default();
                vec![format!(
                    "{}   PSNR {:.3} dB{}  SSIM {:.4}{latency}  ({}) {}",
                    self.tag(*id),
                    evaluation.psnr,
                    self.vs_bicubic(evaluation.psnr),
                    evaluation.ssim,
                    duration(evaluation.seconds),
                    self.eta()
                )]
            }
            Event::Cached { id, evaluation } => {
                vec![format!(
                    "{}   same architecture as before: PSNR {:.3} dB{} (cached, not trained again)",
                    self.tag(*id),
                    evaluation.psnr,
                    self.vs_bicubic(evaluation.psnr)
                )]
            }
            Event::Failed { id, reason } => vec![format!("{}   FAILED: {reason}", self.tag(*id))],
            Event::Killed { id } => vec![format!("{}   killed", self.tag(*id))],
            Event::Stopped { id, stop } => vec![format!(
                "{}   stopped at step {}/{}: {}",
                self.tag(*id),
                stop.step,
                stop.steps,
                stop.reason()
            )],
            Event::GenerationDone {
                generation,
                best,
                mean,
                elites,
            } => {
                let f = |v: &Option<f64>| match v {
                    Some(x) => format!("{x:.3} dB{}", self.vs_bicubic(*x)),
                    None => "- dB".into(),
                };
                let (best, mean) = (f(best), f(mean));
                let elapsed = self.elapsed();
                let mut lines = vec![format!(
                    "generation {}/{} done: best {best}, mean {mean}, elapsed {elapsed}",
                    generation + 1,
                    self.view.run.generations,
                )];
                lines.extend(elites.iter().enumerate().map(|(i, m)| {
                    let psnr = m.fitness().unwrap_or(f64::NAN);
                    format!(
                        "  elite {}: #{} {psnr:.3} dB{} {} params {}",
                        i + 1,
                        m.id,
                        self.vs_bicubic(psnr),
                        thousands(m.params),
                        m.genes
                    )
                }));
                lines
            }
            Event::Paused => vec!["paused: no new training starts until resumed".into()],
            Event::Resumed => vec!["resumed".into()],
            Event::Log { level, message } => {
                if level == "info" {
                    vec![message.clone()]
                } else {
                    vec![format!("{level}: {message}")]
                }
            }
            Event::Exported { dir, count } => {
                vec![format!(
                    "exported {} to {dir}",
                    plural(*count, "architecture")
                )]
            }
            Event::Queued { .. } | Event::Answered { .. } => vec![],
            Event::StageStarted { .. }
            | Event::StageDone { .. }
            | Event::FinalStarted { .. }
            | Event::FinalProgress { .. }
            | Event::FinalValidated { .. }
            | Event::FinalDone { .. }
            | Event::BenchRow { .. }
            | Event::PipelineDone { .. } => self.stage_lines(event),
            Event::Finished {
                complete,
                elites,
                cache_hits,
            } => {
                let elapsed = self.elapsed();
                let mut lines = vec![if *complete {
                    format!(
                        "search finished in {elapsed}; {}",
                        plural(*cache_hits as usize, "cache hit")
                    )
                } else {
                    "search stopped; resume it with --resume".to_string()
                }];
                let bicubic = self.view.run.bicubic_psnr;
                if !elites.iter().any(|m| m.fitness().is_some()) {
                    // An empty table would read as a broken printer.
                    lines.push(if *complete {
                        "no member got a fitness: there are no results to list".into()
                    } else {
                        "no member got a fitness before the stop: there are no results yet".into()
                    });
                    return lines;
                }
                lines.push(format!(
                    "{:>4} {:>6} {:>9} {:>7} {:>7} {:>10}  genes",
                    "rank", "id", "PSNR", "vs bic", "SSIM", "params"
                ));
                for (i, m) in elites.iter().enumerate() {
                    let ssim = match &m.status {
                        crate::search::Status::Evaluated(e) | crate::search::Status::Cached(e) => {
                            e.ssim
                        }
                        _ => f64::NAN,
                    };
                    let psnr = m.fitness().unwrap_or(f64::NAN);
                    lines.push(format!(
                        "{:>4} {:>6} {psnr:>9.3} {:>7} {ssim:>7.4} {:>10}  {}",
                        i + 1,
                        m.id,
                        bicubic.map_or_else(|| "-".into(), |b| signed_db(psnr, b)),
                        thousands(m.params),
                        m.genes
                    ));
                }
                if *complete {
                    lines.extend(self.view.bicubic_verdict());
                }
                lines
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_prints_at_quarters_only() {
        let mut p = Printer::default();
        let lines: usize = (1..=40)
            .map(|step| {
                p.handle(&Event::Progress {
                    id: 1,
                    step,
                    steps: 40,
                    loss: 0.1,
                    lr: 1e-3,
                })
                .len()
            })
            .sum();
        assert_eq!(lines, 4);
    }

    #[test]
    fn lines_read_each_fitness_against_bicubic_when_known() {
        let mut p = Printer::for_run(std::path::Path::new("runs/r"));
        let start = p.handle(&Event::RunStarted {
            run: "r".into(),
            devices: vec!["cpu".into()],
            generations: 1,
            individuals: 1,
            min_params: 1,
            max_params: 2,
            resumed: false,
            bicubic_psnr: Some(29.0),
        });
        assert!(start[0].ends_with("bicubic 29.000 dB on the validation images (the line to beat)"));
        let evaluation = crate::search::Evaluation {
            psnr: 29.45,
            ssim: 0.9,
            final_loss: None,
            seconds: 1.0,
            latency_ms: None,
            checkpoint_losses: Vec::new(),
        };
        let line = p
            .handle(&Event::Evaluated {
                id: 1,
                evaluation: evaluation.clone(),
                params: 1,
                multi_adds: 1,
            })
            .remove(0);
        assert!(
            line.contains("PSNR 29.450 dB (+0.45 dB vs bicubic)  SSIM"),
            "{line}"
        );
        let cached = p.handle(&Event::Cached { id: 2, evaluation }).remove(0);
        assert!(cached.contains("(+0.45 dB vs bicubic) (cached"), "{cached}");
        let done = p.handle(&Event::GenerationDone {
            generation: 0,
            best: Some(29.45),
            mean: Some(28.0),
            elites: vec![],
        });
        assert!(
            done[0].contains(
                "best 29.450 dB (+0.45 dB vs bicubic), mean 28.000 dB (-1.00 dB vs bicubic)"
            ),
            "{done:?}"
        );
    }

    #[test]
    fn eta_is_the_run_views_and_counts_the_devices() {
        let eta_with = |devices: usize| {
            let mut p = Printer::default();
            p.handle(&Event::RunStarted {
                run: "r".into(),
                devices: vec!["cpu".into(); devices],
                generations: 2,
                individuals: 2,
                min_params: 1,
                max_params: 2,
                resumed: false,
                bicubic_psnr: None,
            });
            let evaluation = crate::search::Evaluation {
                psnr: 30.0,
                ssim: 0.9,
                final_loss: None,
                seconds: 10.0,
                latency_ms: None,
                checkpoint_losses: Vec::new(),
            };
            let line = p
                .handle(&Event::Evaluated {
                    id: 1,
                    evaluation,
                    params: 1,
                    multi_adds: 1,
                })
                .remove(0);
            assert_eq!(
                p.view.eta(),
                Some(std::time::Duration::from_secs(20 / devices as u64))
            );
            line
        };
        // One generation of two left, 10 s each: 20 s on one device, 10 s on two.
        assert!(eta_with(1).ends_with("ETA 20s"), "{}", eta_with(1));
        assert!(eta_with(2).ends_with("ETA 10s"), "{}", eta_with(2));
    }
}
