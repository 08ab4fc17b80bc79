//! The embedded default dataset in `assets/`: size budget, shapes, loading,
//! and (ignored) the recipe that regenerates it from `../shared/data/images`.

use std::path::{Path, PathBuf};

use esr_ea::data::{default_train, default_val, downscale, load_rgb, save_rgb_png, RgbImage};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets");
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/images");

/// How one asset is cut from its source photograph.
struct Recipe {
    /// `train` or `val`.
    split: &'static str,
    /// Source file in `../shared/data/images`.
    source: &'static str,
    /// Crop `(top, left, height, width)` in source pixels.
    crop: (usize, usize, usize, usize),
    /// Integer MATLAB-bicubic downscale applied after cropping.
    shrink: usize,
}

/// The recipe behind every file in `assets/` (documented in
/// `assets/ATTRIBUTION.md`). Output sides are multiples of 12 so that x2, x3
/// and x4 modcrops keep the whole image.
const RECIPES: [Recipe; 8] = [
    Recipe {
        split: "train",
        source: "astronaut.png",
        crop: (0, 16, 480, 480),
        shrink: 2,
    },
    Recipe {
        split: "train",
        source: "chelsea.png",
        crop: (6, 10, 288, 432),
        shrink: 2,
    },
    Recipe {
        split: "train",
        source: "keong_macan.png",
        crop: (10, 10, 480, 480),
        shrink: 2,
    },
    Recipe {
        split: "train",
        source: "riaphotographs.png",
        crop: (10, 10, 480, 480),
        shrink: 2,
    },
    Recipe {
        split: "train",
        source: "brick.png",
        crop: (16, 16, 480, 480),
        shrink: 2,
    },
    Recipe {
        split: "train",
        source: "gravel.png",
        crop: (16, 16, 480, 480),
        shrink: 2,
    },
    Recipe {
        split: "val",
        source: "coffee.png",
        crop: (8, 12, 384, 576),
        shrink: 2,
    },
    Recipe {
        split: "val",
        source: "bliznaca.png",
        crop: (10, 10, 480, 480),
        shrink: 2,
    },
];

fn asset_files(split: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ASSETS).join(split))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    files
}

#[test]
fn assets_total_at_most_three_megabytes() {
    fn size(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    size(&e.path())
                } else {
                    e.metadata().unwrap().len()
                }
            })
            .sum()
    }
    let total = size(Path::new(ASSETS));
    assert!(total <= 3 * 1024 * 1024, "assets/ holds {total} bytes");
}

#[test]
fn every_asset_is_described_by_a_recipe_with_sides_multiple_of_12() {
    for split in ["train", "val"] {
        let files = asset_files(split);
        let expected = RECIPES.iter().filter(|r| r.split == split).count();
        assert_eq!(files.len(), expected, "{split}");
        for file in files {
            let name = file.file_name().unwrap().to_str().unwrap();
            assert!(RECIPES.iter().any(|r| r.split == split && r.source == name));
            let img = load_rgb(&file).unwrap();
            assert_eq!(img.height % 12, 0, "{name}");
            assert_eq!(img.width % 12, 0, "{name}");
        }
    }
}

#[test]
fn embedded_datasets_load_at_every_scale() {
    for scale in [2, 3, 4] {
        let train = default_train(scale).unwrap();
        let val = default_val(scale).unwrap();
        assert_eq!(train.len(), 6);
        assert_eq!(val.len(), 2);
        for pair in train.pairs.iter().chain(&val.pairs) {
            assert_eq!(pair.hr.height, pair.lr.height * scale);
            assert_eq!(pair.hr.width, pair.lr.width * scale);
            // Sides are multiples of 12: modcrop keeps everything.
            assert_eq!(pair.hr.height % 12, 0);
        }
        // Validation PSNR is a mean over whole images: enough pixels that
        // the measurement is not the noise (112,896 HR pixels at x2).
        let pixels: usize = val.pairs.iter().map(|p| p.hr.height * p.hr.width).sum();
        assert!(pixels >= 100_000, "{pixels} validation pixels at x{scale}");
    }
}

#[test]
fn embedded_images_equal_the_files() {
    let train = default_train(2).unwrap();
    let files = asset_files("train");
    for (pair, file) in train.pairs.iter().zip(files) {
        assert_eq!(pair.name, file.file_name().unwrap().to_str().unwrap());
        assert_eq!(pair.hr.to_rgb(), load_rgb(&file).unwrap());
    }
}

/// Rewrite `assets/{train,val}/*.png` from the shared source photographs.
#[test]
#[ignore = "regenerates assets/ from ../shared/data/images; run by hand"]
fn regenerate_assets() {
    for recipe in &RECIPES {
        let src: RgbImage = load_rgb(Path::new(SOURCES).join(recipe.source)).unwrap();
        let (top, left, h, w) = recipe.crop;
        let cut = src.crop(top, left, h, w).unwrap();
        let out = if recipe.shrink > 1 {
            downscale(&cut, recipe.shrink).unwrap()
        } else {
            cut.quantized()
        };
        let dir = Path::new(ASSETS).join(recipe.split);
        std::fs::create_dir_all(&dir).unwrap();
        save_rgb_png(&out, dir.join(recipe.source)).unwrap();
    }
}
