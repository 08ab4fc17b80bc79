//! Headless front end: readable progress lines from the engine's events.
//! Pure state + text, so it is tested without a terminal.

use std::collections::HashMap;
use std::time::Instant;

use crate::engine::Event;
use crate::format::{duration, plural, thousands};
use crate::search::Member;

/// Turns events into lines of text.
pub struct Printer {
    generations: usize,
    individuals: usize,
    generation: usize,
    members: HashMap<u64, Member>,
    /// Position of each member in its generation (1-based), for `[g1 3/8]`.
    positions: HashMap<u64, (usize, usize)>,
    steps_printed: HashMap<u64, usize>,
    trained_seconds: Vec<f64>,
    done_in_gen: usize,
    started: Instant,
}

impl Default for Printer {
    fn default() -> Self {
        Printer {
            generations: 0,
            individuals: 0,
            generation: 0,
            members: HashMap::new(),
            positions: HashMap::new(),
            steps_printed: HashMap::new(),
            trained_seconds: Vec::new(),
            done_in_gen: 0,
            started: Instant::now(),
        }
    }
}

impl Printer {
    fn tag(&self, id: u64) -> String {
        let (pos, of) = self.positions.get(&id).copied().unwrap_or((0, 0));
        format!(
            "[g{}/{} {pos}/{of}] #{id}",
            self.generation + 1,
            self.generations
        )
    }

    fn eta(&self) -> String {
        if self.trained_seconds.is_empty() {
            return "ETA -".into();
        }
        let mean = self.trained_seconds.iter().sum::<f64>() / self.trained_seconds.len() as f64;
        let total = self.generations * self.individuals;
        let done = self.generation * self.individuals + self.done_in_gen.min(self.individuals);
        format!("ETA {}", duration(mean * total.saturating_sub(done) as f64))
    }

    /// The lines to print for one event (often none).
    pub fn handle(&mut self, event: &Event) -> Vec<String> {
        match event {
            Event::RunStarted {
                run,
                devices,
                generations,
                individuals,
                min_params,
                max_params,
                resumed,
            } => {
                self.generations = *generations;
                self.individuals = *individuals;
                vec![format!(
                    "{} run '{run}': {generations} generations x {individuals} individuals on {}, budget {}..{} params",
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
                let fresh = *generation != self.generation || self.positions.is_empty();
                self.generation = *generation;
                if fresh {
                    self.done_in_gen = 0;
                }
                for (i, m) in members.iter().enumerate() {
                    self.positions.insert(m.id, (i + 1, members.len()));
                    self.members.insert(m.id, m.clone());
                }
                if fresh {
                    vec![format!(
                        "generation {}/{}: {} individuals",
                        generation + 1,
                        self.generations,
                        members.len()
                    )]
                } else {
                    vec![]
                }
            }
            Event::Started { id, device, steps } => {
                let m = self.members.get(id);
                vec![format!(
                    "{} {} ({} blocks, {} params) training {steps} steps on {device}",
                    self.tag(*id),
                    m.map(|m| m.genes.to_string()).unwrap_or_default(),
                    m.map(|m| m.genes.len()).unwrap_or(0),
                    m.map(|m| thousands(m.params)).unwrap_or_default(),
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
                self.trained_seconds.push(evaluation.seconds);
                self.done_in_gen += 1;
                vec![format!(
                    "{}   PSNR {:.3} dB  SSIM {:.4}  ({}) {}",
                    self.tag(*id),
                    evaluation.psnr,
                    evaluation.ssim,
                    duration(evaluation.seconds),
                    self.eta()
                )]
            }
            Event::Cached { id, evaluation } => {
                self.done_in_gen += 1;
                vec![format!(
                    "{}   same architecture as before: PSNR {:.3} dB (cached, not trained again)",
                    self.tag(*id),
                    evaluation.psnr
                )]
            }
            Event::Failed { id, reason } => {
                self.done_in_gen += 1;
                vec![format!("{}   FAILED: {reason}", self.tag(*id))]
            }
            Event::Killed { id } => {
                self.done_in_gen += 1;
                vec![format!("{}   killed", self.tag(*id))]
            }
            Event::GenerationDone {
                generation,
                best,
                mean,
                elites,
            } => {
                let f =
                    |v: &Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
                let mut lines = vec![format!(
                    "generation {}/{} done: best {} dB, mean {} dB, elapsed {}",
                    generation + 1,
                    self.generations,
                    f(best),
                    f(mean),
                    duration(self.started.elapsed().as_secs_f64())
                )];
                lines.extend(elites.iter().enumerate().map(|(i, m)| {
                    format!(
                        "  elite {}: #{} {:.3} dB {} params {}",
                        i + 1,
                        m.id,
                        m.fitness().unwrap_or(f64::NAN),
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
            Event::Queued { .. } => vec![],
            Event::Finished {
                complete,
                elites,
                cache_hits,
            } => {
                let mut lines = vec![if *complete {
                    format!(
                        "search finished in {}; {}",
                        duration(self.started.elapsed().as_secs_f64()),
                        plural(*cache_hits as usize, "cache hit")
                    )
                } else {
                    "search stopped; resume it with --resume".to_string()
                }];
                lines.push(format!(
                    "{:>4} {:>6} {:>9} {:>7} {:>10}  genes",
                    "rank", "id", "PSNR", "SSIM", "params"
                ));
                for (i, m) in elites.iter().enumerate() {
                    let ssim = match &m.status {
                        crate::search::Status::Evaluated(e) | crate::search::Status::Cached(e) => {
                            e.ssim
                        }
                        _ => f64::NAN,
                    };
                    lines.push(format!(
                        "{:>4} {:>6} {:>9.3} {:>7.4} {:>10}  {}",
                        i + 1,
                        m.id,
                        m.fitness().unwrap_or(f64::NAN),
                        ssim,
                        thousands(m.params),
                        m.genes
                    ));
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
}
