//! Successive halving inside a generation: every member trains to a first
//! checkpoint and waits there; once the whole generation has arrived, the
//! better part (by mean training loss at the checkpoint, the same batches
//! for everyone under common random numbers) continues from its saved
//! checkpoint, the rest stops with no fitness. With several checkpoints this
//! repeats, halving again at each one.
//!
//! Decisions wait for the whole generation (a barrier), so they depend on
//! the members' losses only, never on which parallel training finished
//! first; the waiting members and their checkpoints are part of the saved
//! state, so a resumed search decides exactly as an uninterrupted one.

use serde::{Deserialize, Serialize};

use super::median_stop::{describe_checkpoints, schedule_checkpoints};

/// `nas.trainer.successive_halving`: where the generation is halved and how
/// much of it goes on each time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halving {
    /// `checkpoints`: fractions of the training (strictly between 0 and 1,
    /// increasing) at which the generation is ranked and cut.
    pub checkpoints: Vec<f64>,
    /// `keep`: the fraction of the waiting members that continues (rounded
    /// up, at least one), strictly between 0 and 1.
    pub keep: f64,
    /// `window`: steps whose mean training loss ranks a member; `None` is
    /// 5% of the training (at least one step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
}

/// A member that reached a halving checkpoint: what ranks it and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    /// Which checkpoint (0-based index into the schedule).
    pub rung: usize,
    /// Steps trained so far.
    pub step: usize,
    /// Mean training loss over the window before `step`: lower ranks higher.
    pub loss: f64,
    /// Its mean loss at every checkpoint reached so far (the last is `loss`).
    pub checkpoint_losses: Vec<f64>,
    /// Wall time of its training so far, in seconds.
    pub seconds: f64,
}

impl Halving {
    /// The checkpoints of a training of `steps` steps: `(step, window)`, each
    /// below `steps`, duplicates dropped (as the median rule's).
    pub fn schedule(&self, steps: usize) -> Vec<(usize, usize)> {
        schedule_checkpoints(&self.checkpoints, self.window, steps)
    }

    /// How many of `waiting` members go on: `keep` of them rounded up, at
    /// least one, at most all.
    pub fn kept(&self, waiting: usize) -> usize {
        ((waiting as f64 * self.keep - 1e-9).ceil() as usize).clamp(1, waiting.max(1))
    }

    /// One line for `search --check`.
    pub fn describe(&self, steps: Option<usize>) -> String {
        let at = describe_checkpoints(&self.checkpoints, self.window, steps);
        format!(
            "successive halving: at {at}, once the whole generation is there, the {:.0}% with the lowest mean training loss continue, the others stop",
            self.keep * 100.0
        )
    }
}

/// Orders waiting members for a cut: lowest loss first, ties by id, so the
/// decision is the same however the trainings were scheduled.
pub(crate) fn rank(waiting: &mut [(u64, f64)]) {
    waiting.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halving(keep: f64) -> Halving {
        Halving {
            checkpoints: vec![0.25, 0.5],
            keep,
            window: None,
        }
    }

    #[test]
    fn keeps_the_rounded_up_fraction_and_at_least_one() {
        let h = halving(0.5);
        assert_eq!(h.kept(4), 2);
        assert_eq!(h.kept(5), 3);
        assert_eq!(h.kept(1), 1);
        assert_eq!(halving(0.25).kept(4), 1);
        assert_eq!(halving(0.34).kept(3), 2);
        assert_eq!(halving(0.75).kept(4), 3);
    }

    #[test]
    fn schedules_like_the_median_rule() {
        assert_eq!(halving(0.5).schedule(1000), vec![(250, 50), (500, 50)]);
        assert_eq!(halving(0.5).schedule(2), vec![(1, 1)]);
    }

    #[test]
    fn ranks_by_loss_then_id() {
        let mut w = vec![(3, 0.2), (1, 0.1), (2, 0.2), (0, 0.3)];
        rank(&mut w);
        assert_eq!(w.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3, 0]);
    }
}
