//! Reference trainings taken over from another study of the same networks,
//! so several fitness settings can be compared against one (costly)
//! reference: only trainings that would have been identical are taken.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{files, Study, StudyPlan, Task, TrainingRecord};
use crate::config::Config;

/// What of another study a reference can be taken from.
pub(super) struct Source {
    dir: std::path::PathBuf,
    plan: StudyPlan,
}

impl Source {
    /// Reads `dir`'s plan and config and checks that its reference trainings
    /// are the ones `plan` and `config` would run; the error names the first
    /// thing that differs.
    pub(super) fn open(dir: &Path, plan: &StudyPlan, config: &Config) -> Result<Source> {
        let flag = format!("--references-from {}", dir.display());
        let (other, other_config) =
            super::read_plan_and_config(dir).with_context(|| flag.clone())?;
        let differs = |what: &str, theirs: String, ours: String| -> Result<()> {
            bail!("{flag}: its {what} differs from this study's ({theirs} there, {ours} here); only identical reference trainings can be reused")
        };
        if other.reference != plan.reference {
            let show = |p: &crate::train::trainer::TrainPlan| {
                format!(
                    "{} steps, lr {}, {:?}, batch {} x {} px",
                    p.steps, p.lr, p.scheduler, p.batch_size, p.crop
                )
            };
            differs(
                "reference training",
                show(&other.reference),
                show(&plan.reference),
            )?;
        }
        if other.settings.seed != plan.settings.seed {
            differs(
                "seed",
                other.settings.seed.to_string(),
                plan.settings.seed.to_string(),
            )?;
        }
        if other_config.search_space != config.search_space {
            let show = |s: &crate::space::SearchSpace| {
                format!("G0 {}, x{}, bias {}", s.g0, s.scale, s.bias)
            };
            differs(
                "search space",
                show(&other_config.search_space),
                show(&config.search_space),
            )?;
        }
        if other_config.full_dataset.train != config.full_dataset.train {
            differs(
                "reference training images",
                other_config
                    .full_dataset
                    .train
                    .root_hr
                    .display()
                    .to_string(),
                config.full_dataset.train.root_hr.display().to_string(),
            )?;
        }
        // The reference is scored on the fitness's validation images.
        if other.bicubic_psnr.to_bits() != plan.bicubic_psnr.to_bits()
            || other_config.dataset.test != config.dataset.test
        {
            differs(
                "validation set",
                format!("bicubic {:.3} dB", other.bicubic_psnr),
                format!("bicubic {:.3} dB", plan.bicubic_psnr),
            )?;
        }
        Ok(Source {
            dir: dir.to_path_buf(),
            plan: other,
        })
    }

    /// Copies every finished reference training of the same architecture at
    /// the same index (record and weights) that `study` has not got yet;
    /// returns how many.
    pub(super) fn copy_into(&self, study: &Study) -> Result<usize> {
        let mut copied = 0;
        for task in study.tasks() {
            let Task::Reference { arch, .. } = task else {
                continue;
            };
            let same_arch = self.plan.archs.get(arch).map(|a| &a.genes)
                == study.plan.archs.get(arch).map(|a| &a.genes);
            let key = task.key();
            let from = self.dir.join(files::TRAININGS).join(format!("{key}.json"));
            let to = study.record_path(&task);
            if !same_arch || !from.is_file() || to.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&from)
                .with_context(|| format!("cannot read {}", from.display()))?;
            let record: TrainingRecord = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a training record", from.display()))?;
            if record.task != task || record.psnr.is_none() {
                // A failed training is trained again here rather than copied.
                continue;
            }
            let weights = |dir: &Path| dir.join(files::MODELS).join(format!("{key}.safetensors"));
            if weights(&self.dir).is_file() {
                let bytes = std::fs::read(weights(&self.dir))
                    .with_context(|| format!("cannot read {}", weights(&self.dir).display()))?;
                crate::fsutil::atomic_write(&weights(&study.dir), &bytes)
                    .with_context(|| format!("cannot write {}", weights(&study.dir).display()))?;
            }
            super::write_json(&to, &record)?;
            copied += 1;
        }
        Ok(copied)
    }
}
