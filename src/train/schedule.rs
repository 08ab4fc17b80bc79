//! Learning-rate schedules: PyTorch's `MultiStepLR` (the reference's) and
//! `CosineAnnealingLR` (a smooth decay to `eta_min` over the whole training).

pub use crate::config::ScheduleKind;

/// A learning rate for every step of a training.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule<'a> {
    /// Starting learning rate.
    pub base_lr: f64,
    /// The shape of the decay.
    pub kind: ScheduleKind,
    /// MultiStep: positions (in the unit the trainer counts: steps or
    /// epochs) where the rate drops.
    pub milestones: &'a [usize],
    /// MultiStep: factor applied at each milestone.
    pub gamma: f64,
    /// Cosine: the position where the rate reaches `eta_min`.
    pub total: usize,
}

impl LrSchedule<'_> {
    /// The learning rate after `position` steps/epochs have completed.
    pub fn lr_at(&self, position: usize) -> f64 {
        match self.kind {
            ScheduleKind::MultiStep => {
                let passed = self.milestones.iter().filter(|&&m| m <= position).count();
                self.base_lr * self.gamma.powi(passed as i32)
            }
            ScheduleKind::Cosine { eta_min } => {
                let t = (position as f64 / self.total.max(1) as f64).min(1.0);
                eta_min + (self.base_lr - eta_min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_at_each_milestone() {
        let s = LrSchedule {
            base_lr: 1e-4,
            kind: ScheduleKind::MultiStep,
            milestones: &[100, 200],
            gamma: 0.5,
            total: 300,
        };
        assert_eq!(s.lr_at(0), 1e-4);
        assert_eq!(s.lr_at(99), 1e-4);
        assert_eq!(s.lr_at(100), 5e-5);
        assert_eq!(s.lr_at(250), 2.5e-5);
    }

    #[test]
    fn cosine_runs_from_the_base_rate_to_eta_min_like_pytorch() {
        let s = LrSchedule {
            base_lr: 2e-3,
            kind: ScheduleKind::Cosine { eta_min: 1e-5 },
            milestones: &[],
            gamma: 1.0,
            total: 1000,
        };
        assert_eq!(s.lr_at(0), 2e-3);
        // Half way: the mean of both ends (PyTorch's closed form).
        assert!((s.lr_at(500) - (2e-3 + 1e-5) / 2.0).abs() < 1e-15);
        assert!((s.lr_at(1000) - 1e-5).abs() < 1e-15);
        assert!((s.lr_at(5000) - 1e-5).abs() < 1e-15);
        let rates: Vec<f64> = (0..=1000).map(|p| s.lr_at(p)).collect();
        assert!(rates.windows(2).all(|w| w[1] <= w[0]), "never rises");
    }
}
