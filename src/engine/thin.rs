//! How much of a member's training progress the run records.
//!
//! A paper-length search trains 160 members for 25,000 steps each: one
//! `events.jsonl` line a step would be ~370 MB that every `attach` replays.
//! The engine records at most [`POINTS_PER_MEMBER`] progress points a
//! member (plus one whenever [`MAX_SILENCE`] passed, so a slow training
//! stays live), each carrying the mean loss of the steps since the previous
//! point: every step's loss counts, at a fixed resolution.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::events::Event;

/// Progress points a member's training records at most (besides the
/// liveness points of slow trainings).
pub const POINTS_PER_MEMBER: usize = 500;

/// Longest time a training goes without a recorded point.
pub const MAX_SILENCE: Duration = Duration::from_secs(2);

/// The steps reported since a member's last recorded point.
struct Bucket {
    sum: f64,
    count: usize,
    since: Instant,
}

/// Per-member buckets of step reports.
#[derive(Default)]
pub struct ProgressThinner {
    members: HashMap<u64, Bucket>,
}

impl ProgressThinner {
    /// Takes one step's report; returns the progress event to record, if
    /// this step closes a point: the first and last step, every
    /// `steps / POINTS_PER_MEMBER`-th step, a non-finite loss (shown at once),
    /// or [`MAX_SILENCE`] since the last point.
    pub fn step(
        &mut self,
        id: u64,
        step: usize,
        steps: usize,
        loss: f64,
        lr: f64,
    ) -> Option<Event> {
        let bucket = self.members.entry(id).or_insert_with(|| Bucket {
            sum: 0.0,
            count: 0,
            since: Instant::now(),
        });
        if loss.is_finite() {
            bucket.sum += loss;
            bucket.count += 1;
        }
        let stride = steps.div_ceil(POINTS_PER_MEMBER).max(1);
        let close = step <= 1
            || step >= steps
            || step % stride == 0
            || !loss.is_finite()
            || bucket.since.elapsed() >= MAX_SILENCE;
        if !close {
            return None;
        }
        let mean = if loss.is_finite() && bucket.count > 0 {
            bucket.sum / bucket.count as f64
        } else {
            loss
        };
        *bucket = Bucket {
            sum: 0.0,
            count: 0,
            since: Instant::now(),
        };
        Some(Event::Progress {
            id,
            step,
            steps,
            loss: mean,
            lr,
        })
    }

    /// Drops a member's bucket (its training ended).
    pub fn forget(&mut self, id: u64) {
        self.members.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(t: &mut ProgressThinner, id: u64, steps: usize) -> Vec<(usize, f64)> {
        (1..=steps)
            .filter_map(|s| match t.step(id, s, steps, s as f64, 1e-3) {
                Some(Event::Progress { step, loss, .. }) => Some((step, loss)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_paper_length_training_records_a_bounded_number_of_means() {
        let mut t = ProgressThinner::default();
        let p = points(&mut t, 7, 25_000);
        // Step 1, then every 50th (the last is one of them); a slow machine may add liveness points.
        assert!(p.len() >= 501 && p.len() < 600, "{}", p.len());
        assert_eq!(p[0], (1, 1.0));
        assert_eq!(p.last().unwrap().0, 25_000);
        // The point at step 100 is the mean of steps 51..=100 (no liveness point between).
        if let Some(&(_, mean)) = p.iter().find(|(s, _)| *s == 100) {
            let prev = p.iter().rev().find(|(s, _)| *s < 100).unwrap().0;
            let expect = (prev + 1..=100).sum::<usize>() as f64 / (100 - prev) as f64;
            assert!((mean - expect).abs() < 1e-9, "{mean} vs {expect}");
        }
    }

    #[test]
    fn short_trainings_keep_every_step_and_bad_losses_show_at_once() {
        let mut t = ProgressThinner::default();
        assert_eq!(points(&mut t, 1, 300).len(), 300);
        let e = t.step(2, 3, 25_000, f64::NAN, 1e-3);
        assert!(matches!(e, Some(Event::Progress { loss, .. }) if loss.is_nan()));
    }
}
