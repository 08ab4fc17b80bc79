//! Loading the datasets a config names, with the embedded default as a
//! fallback when the binary runs away from its checkout.

use std::path::{Path, PathBuf};

use crate::config::DataSplit;
use crate::data::{default_train, default_val, DataError, Dataset};

/// The checkout's asset folders the embedded images were built from.
fn asset_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
}

/// Loads one configured split (HR folder, optional LR folder paired by name).
/// When the folder is the default `assets/train` or `assets/val` and it is
/// not on disk (an installed binary), the copy embedded in the binary is used.
pub fn load_split(split: &DataSplit, scale: usize) -> Result<Dataset, DataError> {
    if !split.root_hr.exists() && split.root_lr.is_none() {
        if split.root_hr == asset_dir("train") {
            return default_train(scale);
        }
        if split.root_hr == asset_dir("val") {
            return default_val(scale);
        }
    }
    Dataset::load(&split.root_hr, split.root_lr.as_deref(), scale)
}

/// A benchmark folder: `DIR/HR` (+ `DIR/LR`, paired by name) when present,
/// else `DIR` holds HR images whose LR is made by bicubic downscaling.
pub fn load_benchmark_dir(dir: &Path, scale: usize) -> Result<Dataset, DataError> {
    let hr = dir.join("HR");
    if hr.is_dir() {
        let lr = ["LR", "LR_bicubic"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_dir());
        return Dataset::load(&hr, lr.as_deref(), scale);
    }
    Dataset::load(dir, None, scale)
}
