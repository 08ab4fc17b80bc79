//! A `benchmark_<Name>` stage: bicubic and every fully trained finalist on
//! one set, as `esr-ea bench` scores them (Y channel, `scale` px shaved),
//! added to `bench.json`.

use anyhow::{bail, Context, Result};

use super::super::results::{
    self, files, BenchResults, BenchSet, FinalResult, ModelScore, SetScore,
};
use super::Pipeline;
use crate::data::dataset::Dataset;
use crate::data::upscale_bicubic;
use crate::metrics::{psnr_y, ssim_y};
use crate::model::checkpoint::load_model;
use crate::train::datasets::{load_benchmark_for_scoring, too_small, Role};
use crate::train::trainer::upscale_image;

impl Pipeline {
    /// Scores the set; `Ok(false)` when stopped (the set is redone on resume).
    pub(super) fn benchmark(&mut self, name: &str) -> Result<bool> {
        let Some(set) = self
            .config
            .benchmarks
            .iter()
            .find(|b| b.name == name)
            .cloned()
        else {
            bail!("benchmark_{name}: the run's config.yaml has no such section");
        };
        let scale = self.config.search_space.scale;
        let data = match &set.root_lr {
            Some(lr) => Dataset::load_checked(&set.root_hr, Some(lr), scale, &|p| {
                too_small(p, &set.root_hr, scale, Role::Scoring)
            })?,
            None => load_benchmark_for_scoring(&set.root_hr, scale)?,
        };
        let dev = crate::device::open(self.devices.first().map_or("cpu", String::as_str))?;
        let mut models = Vec::new();
        for rank in 1.. {
            let dir = results::final_dir(&self.run_dir, rank);
            let Some(result) = results::read_json::<FinalResult>(&dir.join(files::RESULT))? else {
                break;
            };
            let (model, _) = load_model(dir.join(files::MODEL), &dev)
                .with_context(|| format!("benchmark_{name}: finalist #{rank}"))?;
            models.push((result.rank, model));
        }
        if models.is_empty() {
            bail!("benchmark_{name}: no fully trained model in final/ (the fully_train stage must come first)");
        }
        self.log(
            "info",
            format!(
                "benchmark {name}: {} images, bicubic and {}",
                data.len(),
                crate::format::plural(models.len(), "model")
            ),
        );
        // (psnr, ssim) sums: bicubic first, then each model.
        let mut sums = vec![(0.0, 0.0); models.len() + 1];
        for pair in &data.pairs {
            self.drain();
            if self.stopping() {
                return Ok(false);
            }
            let bicubic = upscale_bicubic(&pair.lr, scale)?;
            sums[0].0 += psnr_y(&bicubic, &pair.hr, scale)?;
            sums[0].1 += ssim_y(&bicubic, &pair.hr, scale)?;
            for (i, (_, model)) in models.iter().enumerate() {
                let sr = upscale_image(model, &pair.lr, &dev)?;
                sums[i + 1].0 += psnr_y(&sr, &pair.hr, scale)?;
                sums[i + 1].1 += ssim_y(&sr, &pair.hr, scale)?;
            }
        }
        let n = data.len().max(1) as f64;
        let mean = |(p, s): (f64, f64)| SetScore {
            psnr: p / n,
            ssim: s / n,
        };
        let bench_set = BenchSet {
            name: name.to_string(),
            path: set.root_hr.display().to_string(),
            images: data.len(),
            bicubic: mean(sums[0]),
            models: models
                .iter()
                .zip(&sums[1..])
                .map(|((rank, _), sum)| ModelScore {
                    rank: *rank,
                    score: mean(*sum),
                })
                .collect(),
        };
        let path = self.run_dir.join(files::BENCH);
        let mut all: BenchResults = results::read_json(&path)?.unwrap_or_default();
        all.sets.retain(|s| s.name != name);
        all.sets.push(bench_set.clone());
        results::write_json(&path, &all)?;
        let rows = std::iter::once((None, bench_set.bicubic.clone())).chain(
            bench_set
                .models
                .iter()
                .map(|m| (Some(m.rank), m.score.clone())),
        );
        for (rank, score) in rows {
            self.emit(super::Event::BenchRow {
                set: name.to_string(),
                images: data.len(),
                rank,
                psnr: score.psnr,
                ssim: score.ssim,
            });
        }
        Ok(true)
    }
}
