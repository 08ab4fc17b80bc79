//! A `benchmark_<Name>` stage: bicubic and every fully trained finalist on
//! one set, as `esr-ea bench` scores them (Y channel, `scale` px shaved),
//! added to `bench.json`.

use anyhow::{bail, Context, Result};

use super::super::results::{
    self, files, BenchResults, BenchSet, FinalResult, ModelScore, SetScore,
};
use super::Pipeline;
use crate::metrics::{bicubic_image, score_image, ImageScores, Score};
use crate::model::checkpoint::load_model;
use crate::model::infer::upscale_image;
use crate::train::datasets::load_benchmark_for_scoring;

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
        let cache = self.data_cache();
        let data = load_benchmark_for_scoring(&set.root_hr, set.root_lr.as_deref(), scale, &cache)?;
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
        // Image by image: bicubic first, then each model.
        let mut scored: Vec<ImageScores> = vec![Vec::new(); models.len() + 1];
        for pair in &data.pairs {
            self.drain();
            if self.stopping() {
                return Ok(false);
            }
            // Each image made f32 once for bicubic and every model.
            let (lr, hr) = (pair.lr.to_rgb(), pair.hr.to_rgb());
            let (psnr, ssim) = bicubic_image(&lr, &hr, scale)?;
            scored[0].push((pair.name.clone(), psnr, ssim));
            for (i, (_, model)) in models.iter().enumerate() {
                let sr = upscale_image(model, &lr, &dev)?;
                let (psnr, ssim) = score_image(&sr, &hr, scale)?;
                scored[i + 1].push((pair.name.clone(), psnr, ssim));
            }
        }
        let mut means = scored
            .into_iter()
            .map(|images| SetScore::from(Score::from_images(images)));
        let bench_set = BenchSet {
            name: name.to_string(),
            path: set.root_hr.display().to_string(),
            images: data.len(),
            bicubic: means.next().unwrap_or_default(),
            models: models
                .iter()
                .zip(means)
                .map(|((rank, _), score)| ModelScore { rank: *rank, score })
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
