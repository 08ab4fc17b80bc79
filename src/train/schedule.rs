//! MultiStepLR: the learning rate is multiplied by `gamma` at each milestone.

/// A step-wise decaying learning rate, as PyTorch's `MultiStepLR`.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStepLr {
    /// Starting learning rate.
    pub base_lr: f64,
    /// Positions (in the unit the trainer counts: steps or epochs) where the rate drops.
    pub milestones: Vec<usize>,
    /// Factor applied at each milestone.
    pub gamma: f64,
}

impl MultiStepLr {
    /// The learning rate after `position` steps/epochs have completed.
    pub fn lr_at(&self, position: usize) -> f64 {
        let passed = self.milestones.iter().filter(|&&m| m <= position).count();
        self.base_lr * self.gamma.powi(passed as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_at_each_milestone() {
        let s = MultiStepLr {
            base_lr: 1e-4,
            milestones: vec![100, 200],
            gamma: 0.5,
        };
        assert_eq!(s.lr_at(0), 1e-4);
        assert_eq!(s.lr_at(99), 1e-4);
        assert_eq!(s.lr_at(100), 5e-5);
        assert_eq!(s.lr_at(250), 2.5e-5);
    }
}
