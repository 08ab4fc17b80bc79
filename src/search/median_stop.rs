//! The median stopping rule (NNI's Medianstop) inside the fitness: a member
//! whose training loss at a checkpoint is worse than the median of what
//! members of earlier generations had at the same checkpoint is stopped
//! there, and gets no fitness.
//!
//! The limits a member is held to are computed from the recorded curves of
//! earlier generations only, when its job is handed out. Those are fixed
//! before its generation starts, so the decision does not depend on which
//! parallel member finished first, and a resumed run (or a Slurm job run
//! again) decides exactly as an uninterrupted one.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Member, Status};

/// `nas.trainer.median_stop`: where members are checked and how much
/// history the median needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MedianStop {
    /// `checkpoints`: fractions of the training (strictly between 0 and 1,
    /// increasing) at which a member is compared with the median.
    pub checkpoints: Vec<f64>,
    /// `min_history`: earlier members that must have reached a checkpoint
    /// before it stops anyone (the median of two or three curves is noise).
    pub min_history: usize,
    /// `window`: steps whose mean training loss is a member's value at a
    /// checkpoint; `None` is 5% of the training (at least one step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
}

/// One checkpoint of a member's training, as its job carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopCheck {
    /// The step after which the member is checked (1-based count of steps done).
    pub step: usize,
    /// Steps averaged: the mean L1 loss of steps `step - window + 1 ..= step`.
    pub window: usize,
    /// The median of earlier generations at this checkpoint; the member
    /// stops when its mean loss is above it. `None` while too few earlier
    /// members reached it: the loss is only recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

/// Checkpoints at `fractions` of a training of `steps` steps: `(step,
/// window)`, each step at least 1 and below `steps` (a check after the last
/// step saves nothing), duplicates dropped; the window is `window` or 5% of
/// the training, never more than the steps done.
pub(crate) fn schedule_checkpoints(
    fractions: &[f64],
    window: Option<usize>,
    steps: usize,
) -> Vec<(usize, usize)> {
    let default_window = ((steps as f64 * 0.05).round() as usize).max(1);
    let mut out: Vec<(usize, usize)> = Vec::new();
    for fraction in fractions {
        let step = ((fraction * steps as f64).round() as usize).max(1);
        if step >= steps || out.last().is_some_and(|(s, _)| *s >= step) {
            continue;
        }
        out.push((step, window.unwrap_or(default_window).clamp(1, step)));
    }
    out
}

/// Where checkpoints fall, for `search --check`: in steps (with their
/// windows) when the training's length is known in steps, else in percent.
pub(crate) fn describe_checkpoints(
    fractions: &[f64],
    window: Option<usize>,
    steps: Option<usize>,
) -> String {
    match steps {
        Some(steps) => schedule_checkpoints(fractions, window, steps)
            .iter()
            .map(|(step, window)| format!("step {step} (mean of {window})"))
            .collect::<Vec<_>>()
            .join(", "),
        None => fractions
            .iter()
            .map(|c| format!("{:.0}%", c * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The mean of the last `window` of `losses` (all of them when fewer): a
/// member's value at a checkpoint, for both stopping rules.
pub fn window_mean(losses: &[f64], window: usize) -> f64 {
    let last = &losses[losses.len().saturating_sub(window)..];
    last.iter().sum::<f64>() / last.len().max(1) as f64
}

/// Which rule stopped a member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopRule {
    /// The median stopping rule: `median` is the median of earlier generations.
    #[default]
    Median,
    /// Successive halving: `median` is the mean loss of the last member of
    /// its generation that went on.
    Halving {
        /// How many of the waiting members went on.
        kept: usize,
        /// How many were waiting.
        of: usize,
    },
}

/// A member stopped by the median rule or by successive halving: where,
/// why, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    /// Steps trained before it stopped.
    pub step: usize,
    /// Steps a full evaluation would have trained.
    pub steps: usize,
    /// Its mean training loss at the checkpoint where it stopped.
    pub loss: f64,
    /// The median it was above.
    pub median: f64,
    /// Its mean training loss at each checkpoint it reached (the last one
    /// is `loss`): its curve, for the medians of later generations.
    pub checkpoint_losses: Vec<f64>,
    /// Wall time of its training, in seconds.
    pub seconds: f64,
    /// The rule that stopped it (absent in files: the median rule).
    #[serde(default, skip_serializing_if = "StopRule::is_median")]
    pub rule: StopRule,
}

impl StopRule {
    fn is_median(&self) -> bool {
        *self == StopRule::Median
    }
}

impl Stop {
    /// Why it stopped, for logs and headless lines (`mean loss 0.03120 above
    /// the median 0.03010 of earlier generations`).
    pub fn reason(&self) -> String {
        match self.rule {
            StopRule::Median => format!(
                "mean loss {:.5} above the median {:.5} of earlier generations",
                self.loss, self.median
            ),
            StopRule::Halving { kept, of } => format!(
                "mean loss {:.5} behind the {kept} of {of} of its generation that go on (cut at {:.5}, successive halving)",
                self.loss, self.median
            ),
        }
    }

    /// The rule's name, for summaries (`the median rule`, `successive halving`).
    pub fn rule_name(&self) -> &'static str {
        match self.rule {
            StopRule::Median => "the median rule",
            StopRule::Halving { .. } => "successive halving",
        }
    }
}

impl MedianStop {
    /// The checkpoints of a training of `steps` steps, without limits:
    /// `(step, window)`, each step at least 1 and below `steps` (a check
    /// after the last step saves nothing), duplicates dropped.
    pub fn schedule(&self, steps: usize) -> Vec<(usize, usize)> {
        schedule_checkpoints(&self.checkpoints, self.window, steps)
    }

    /// One line for `search --check`: where members are checked (in steps
    /// when the training's length is known in steps).
    pub fn describe(&self, steps: Option<usize>) -> String {
        let at = describe_checkpoints(&self.checkpoints, self.window, steps);
        format!(
            "median stopping rule: at {at}, a member whose mean training loss is above the median of earlier generations (once {} reached it) stops",
            self.min_history
        )
    }

    /// The checks a member of `generation` is held to: at each checkpoint,
    /// the median of the values that members of earlier generations in
    /// `history` recorded there (each architecture once, its first
    /// training: cached copies repeat it), when at least `min_history`
    /// reached it. Members that the rule stopped count at the checkpoints
    /// they reached, so the median stays the median of the population and
    /// does not drift up with the survivors.
    pub fn checks(&self, steps: usize, history: &[Member], generation: usize) -> Vec<StopCheck> {
        let mut seen = HashSet::new();
        let curves: Vec<&[f64]> = history
            .iter()
            .filter(|m| m.generation < generation)
            .filter_map(|m| {
                let curve = match &m.status {
                    Status::Evaluated(e) => &e.checkpoint_losses,
                    Status::Stopped(s) => &s.checkpoint_losses,
                    _ => return None,
                };
                seen.insert(m.key()).then_some(curve.as_slice())
            })
            .collect();
        self.schedule(steps)
            .into_iter()
            .enumerate()
            .map(|(i, (step, window))| {
                let mut values: Vec<f64> =
                    curves.iter().filter_map(|c| c.get(i).copied()).collect();
                let limit = (values.len() >= self.min_history.max(1)).then(|| median(&mut values));
                StopCheck {
                    step,
                    window,
                    limit,
                }
            })
            .collect()
    }
}

/// What the median stopping rule did in a search: members it stopped
/// (each stopped training once; copies of a stopped architecture are cache
/// hits) and the training steps that saved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopTally {
    /// Trainings stopped at a checkpoint.
    pub stopped: usize,
    /// Steps they did not train.
    pub steps_saved: usize,
    /// True when successive halving made the stops (else the median rule).
    #[serde(default)]
    pub by_halving: bool,
}

impl StopTally {
    /// Counts the stops in a search's history.
    pub fn of(history: &[Member]) -> StopTally {
        let mut seen = HashSet::new();
        let mut tally = StopTally::default();
        for m in history {
            if let Status::Stopped(stop) = &m.status {
                if seen.insert(m.key()) {
                    tally.by_halving |= matches!(stop.rule, StopRule::Halving { .. });
                    tally.stopped += 1;
                    tally.steps_saved += stop.steps.saturating_sub(stop.step);
                }
            }
        }
        tally
    }
}

/// The median (mean of the middle two for an even count); `values` is sorted.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Follows a training step by step against its checks: feed it every
/// step's loss; it records the mean loss at each checkpoint and says when
/// the member is to stop.
#[derive(Debug, Clone)]
pub struct StopWatch {
    checks: Vec<StopCheck>,
    losses: Vec<f64>,
    /// Mean loss at each checkpoint passed so far.
    pub checkpoint_losses: Vec<f64>,
}

/// Where a [`StopWatch`] stopped a training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopPoint {
    /// Steps done.
    pub step: usize,
    /// The member's mean loss there.
    pub loss: f64,
    /// The median it was above.
    pub median: f64,
}

impl StopWatch {
    /// A watch over `checks` (from [`MedianStop::checks`]).
    pub fn new(checks: Vec<StopCheck>) -> StopWatch {
        StopWatch {
            checks,
            losses: Vec::new(),
            checkpoint_losses: Vec::new(),
        }
    }

    /// Records the loss of step `step` (1-based); `Some` when the member
    /// is to stop after it.
    pub fn step(&mut self, step: usize, loss: f64) -> Option<StopPoint> {
        self.losses.push(loss);
        let check = self.checks.get(self.checkpoint_losses.len())?;
        if check.step != step {
            return None;
        }
        let mean = window_mean(&self.losses, check.window);
        self.checkpoint_losses.push(mean);
        match check.limit {
            Some(median) if mean > median => Some(StopPoint {
                step,
                loss: mean,
                median,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Evaluation, Individual, Origin};
    use crate::space::GeneList;

    fn rule(min_history: usize) -> MedianStop {
        MedianStop {
            checkpoints: vec![0.25, 0.5],
            min_history,
            window: Some(2),
        }
    }

    fn member(id: u64, generation: usize, genes: &[&str], status: Status) -> Member {
        Member {
            id,
            generation,
            individual: Individual { slots: Vec::new() },
            genes: GeneList::parse_args(genes).unwrap(),
            params: 0,
            multi_adds: 0,
            origin: Origin::Initial,
            status,
        }
    }

    fn evaluated(curve: &[f64]) -> Status {
        Status::Evaluated(Evaluation {
            psnr: 20.0,
            ssim: 0.5,
            final_loss: None,
            seconds: 1.0,
            latency_ms: None,
            checkpoint_losses: curve.to_vec(),
        })
    }

    #[test]
    fn the_schedule_rounds_fractions_to_steps_below_the_end() {
        assert_eq!(rule(1).schedule(100), vec![(25, 2), (50, 2)]);
        assert!(rule(1)
            .describe(Some(100))
            .contains("at step 25 (mean of 2), step 50 (mean of 2),"));
        assert!(rule(1).describe(None).contains("at 25%, 50%,"));
        let r = MedianStop {
            checkpoints: vec![0.01, 0.02, 0.999],
            min_history: 1,
            window: None,
        };
        // 0.01 and 0.02 of 40 steps both round to step 1; 0.999 is the end.
        assert_eq!(r.schedule(40), vec![(1, 1)]);
        assert_eq!(r.schedule(300)[0], (3, 3), "window capped by the step");
    }

    #[test]
    fn limits_are_medians_of_earlier_generations_each_architecture_once() {
        let history = vec![
            member(0, 0, &["G_4_8_16"], evaluated(&[0.4, 0.3])),
            member(1, 0, &["S_4_8_16"], evaluated(&[0.2, 0.1])),
            member(
                2,
                0,
                &["C_4_8_16"],
                Status::Stopped(Stop {
                    step: 25,
                    steps: 100,
                    loss: 0.6,
                    median: 0.5,
                    checkpoint_losses: vec![0.6],
                    seconds: 1.0,
                    rule: StopRule::Median,
                }),
            ),
            // A cached copy and a second training of one architecture count once.
            member(3, 1, &["G_4_8_16"], evaluated(&[9.0, 9.0])),
            member(4, 0, &["G_4_8_16"], evaluated(&[0.0, 0.0])),
            // The member's own generation is not looked at.
            member(5, 2, &["G_4_16_16"], evaluated(&[0.0, 0.0])),
        ];
        let checks = rule(2).checks(100, &history, 2);
        assert_eq!(checks[0].limit, Some(0.4), "median of 0.4, 0.2 and 0.6");
        assert_eq!(
            checks[1].limit,
            Some(0.2),
            "even count: mean of 0.1 and 0.3"
        );
        let checks = rule(3).checks(100, &history, 2);
        assert_eq!(checks[0].limit, Some(0.4));
        assert_eq!(
            checks[1].limit, None,
            "only two reached the second checkpoint"
        );
        assert!(rule(1)
            .checks(100, &history, 0)
            .iter()
            .all(|c| c.limit.is_none()));
    }

    #[test]
    fn the_watch_records_window_means_and_stops_above_the_median() {
        let checks = vec![
            StopCheck {
                step: 2,
                window: 2,
                limit: None,
            },
            StopCheck {
                step: 4,
                window: 2,
                limit: Some(0.3),
            },
        ];
        let mut watch = StopWatch::new(checks.clone());
        assert_eq!(watch.step(1, 1.0), None);
        assert_eq!(watch.step(2, 0.5), None, "no limit: recorded only");
        assert_eq!(watch.step(3, 0.4), None);
        let stop = watch.step(4, 0.3).expect("0.35 > 0.3");
        assert_eq!(stop.step, 4);
        assert!((stop.loss - 0.35).abs() < 1e-12);
        assert_eq!(watch.checkpoint_losses, vec![0.75, stop.loss]);
        let mut good = StopWatch::new(checks);
        for (step, loss) in [(1, 1.0), (2, 0.5), (3, 0.3), (4, 0.3)] {
            assert_eq!(good.step(step, loss), None, "equal to the median goes on");
        }
        assert_eq!(good.checkpoint_losses, vec![0.75, 0.3]);
    }
}
