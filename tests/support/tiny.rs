//! A tiny real dataset (crops of the embedded photographs) and a tiny search
//! config over it, for whole searches through the binary in a second or two.

use std::path::{Path, PathBuf};

/// Crops `train_photos` (paths under `assets/`) to `train_side` squares at
/// (`at`, `at`) into `dir/train/0.png`, `1.png`, …, and `val/coffee.png` to a
/// `val_side` square into `dir/val/0.png`.
pub fn photo_crops(dir: &Path, train_photos: &[&str], at: u32, train_side: u32, val_side: u32) {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for (split, sources, side) in [
        ("train", train_photos, train_side),
        ("val", &["val/coffee.png"][..], val_side),
    ] {
        let out = dir.join(split);
        std::fs::create_dir_all(&out).unwrap();
        for (i, src) in sources.iter().enumerate() {
            let img = image::open(assets.join(src)).unwrap().to_rgb8();
            image::imageops::crop_imm(&img, at, at, side, side)
                .to_image()
                .save(out.join(format!("{i}.png")))
                .unwrap();
        }
    }
}

/// [`photo_crops`] at (40, 40): 48-pixel training crops, a 24-pixel one to
/// validate on.
pub fn tiny_dataset(dir: &Path, train_photos: &[&str]) {
    photo_crops(dir, train_photos, 40, 48, 24);
}

/// The values in which the tests' tiny search configs differ; the rest (4
/// individuals of 20k–60k parameters, crop 8, Adam at 1e-3, L1, a 20-step
/// full training of the best) is shared.
pub struct TinySearch {
    pub seed: u64,
    pub generations: usize,
    pub batch_size: usize,
    /// Training steps of each member.
    pub steps: usize,
    /// The step at which the learning rate halves.
    pub milestone: usize,
}

impl TinySearch {
    /// The config as YAML, with `train` and `val` as its dataset folders.
    pub fn yaml(&self) -> String {
        let TinySearch {
            seed,
            generations,
            batch_size,
            steps,
            milestone,
        } = self;
        format!(
            r#"
seed: {seed}
nas:
  search_space:
    esrbody: {{block_type: [S, G, C], conv_num: [4], growth_rate: [8, 16], type_prob: [1, 1, 1],
              conv_prob: [1], growth_prob: [1, 1], G0: 8, scale: 2}}
  search_algorithm:
    policy: {{num_generation: {generations}, num_individual: 4, num_elitism: 2, mutation_rate: 0.1}}
    range: {{node_num: 10, min_active: 4, max_params: 60000, min_params: 20000}}
  dataset:
    train: {{root_HR: train, upscale: 2, crop: 8, batch_size: {batch_size}}}
    test: {{root_HR: val, upscale: 2}}
  trainer:
    steps: {steps}
    optimizer: {{type: Adam, params: {{lr: 0.001}}}}
    lr_scheduler: {{type: MultiStepLR, milestones: [{milestone}], gamma: 0.5, milestones_unit: steps}}
    loss: {{type: L1Loss}}
fully_train:
  trainer:
    steps: 20
    optimizer: {{type: Adam, params: {{lr: 0.001}}}}
    lr_scheduler: {{type: MultiStepLR, milestones: [15], gamma: 0.5, milestones_unit: steps}}
"#
        )
    }

    /// Writes the config to `dir/name` and returns that path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.yaml()).unwrap();
        path
    }
}
