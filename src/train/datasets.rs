//! Loading the datasets a config names, with the embedded default as a
//! fallback when the binary runs away from its checkout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::DataSplit;

use crate::data::{
    default_train, default_val, CacheEvent, CachePlace, DataCache, DataError, Dataset, ImagePair,
};

/// What a split's images are used for, which decides how large they must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Training patches: each LR image at least `crop` pixels on each side.
    Training {
        /// LR crop side.
        crop: usize,
    },
    /// Scored whole (validation, benchmarks): each HR image large enough to
    /// score with `scale` border pixels shaved ([`crate::metrics::smallest_scored_side`]).
    Scoring,
}

/// [`load_split`] with every image checked against what `role` needs: all
/// images that cannot be used (undecodable, unpaired, too small: file and
/// size needed) are named in one error, before anything trains on them.
pub fn load_for(
    split: &DataSplit,
    scale: usize,
    role: Role,
    cache: &DataCache,
) -> Result<Dataset, DataError> {
    let smallest = crate::metrics::smallest_scored_side(scale);
    if role == Role::Scoring && split.val_crop > 0 && split.val_crop * scale < smallest {
        // The bound is the scoring rule's own (metrics::smallest_scored_side).
        return Err(DataError::InvalidArgument {
            name: "val_crop",
            value: format!(
                "{} (at x{scale} the scored HR side needs at least {} LR pixels)",
                split.val_crop,
                smallest.div_ceil(scale)
            ),
            allowed: "0 (whole images) or a window large enough to score",
        });
    }
    let dir = split.root_hr.clone();
    let set = match embedded_default(split, scale) {
        Some(embedded) => embedded?,
        None => Dataset::load_checked(
            &split.root_hr,
            split.root_lr.as_deref(),
            scale,
            cache,
            &|p| too_small(p, &dir, scale, role),
        )?,
    };
    Ok(match role {
        Role::Scoring if split.val_crop > 0 => set.centre_cropped(split.val_crop),
        _ => set,
    })
}

/// How many images a split holds, without decoding them (the embedded
/// default is small and decoded): what a training's length in epochs needs
/// where the images themselves are not (a Slurm coordinator).
pub fn count_images(split: &DataSplit, scale: usize) -> Result<usize, DataError> {
    match embedded_default(split, scale) {
        Some(embedded) => embedded.map(|d| d.len()),
        None => crate::data::dataset::list_images(&split.root_hr).map(|files| files.len()),
    }
}

/// A benchmark set's images, checked as [`Role::Scoring`] needs: `dir` with
/// `lr_dir` paired by name, or without it `DIR/HR` (+ `DIR/LR`) when present,
/// else `DIR` holding HR images whose LR is made by bicubic downscaling.
pub fn load_benchmark_for_scoring(
    dir: &Path,
    lr_dir: Option<&Path>,
    scale: usize,
    cache: &DataCache,
) -> Result<Dataset, DataError> {
    let (hr, lr) = match lr_dir {
        Some(lr) => (dir.to_path_buf(), Some(lr.to_path_buf())),
        None => benchmark_folders(dir),
    };
    Dataset::load_checked(&hr, lr.as_deref(), scale, cache, &|p| {
        too_small(p, &hr, scale, Role::Scoring)
    })
}

/// A cache at `place` whose news (waiting, preparing, rebuilt, ready) is
/// one line each to `say`: at most one progress line every 5 seconds, and
/// nothing when the cache was ready and quick to check.
pub fn reported_cache(
    place: CachePlace,
    say: impl Fn(String) + Send + Sync + 'static,
) -> DataCache {
    let last = std::sync::Mutex::new(Instant::now());
    DataCache::new(place, move |event| {
        let line = match event {
            CacheEvent::Waiting { path } => format!(
                "waiting for another esr-ea that is preparing {}",
                path.display()
            ),
            CacheEvent::Rebuilding { path, reason } => format!(
                "image cache {}: {reason}; preparing it again",
                path.display()
            ),
            CacheEvent::Preparing { path, done, total } => {
                let mut last = last.lock().expect("not poisoned");
                if *done != 1 && done != total && last.elapsed().as_secs() < 5 {
                    return;
                }
                *last = Instant::now();
                format!(
                    "preparing the image cache {} (once): {done}/{total} images decoded",
                    path.display()
                )
            }
            CacheEvent::Ready {
                path,
                images,
                decoded,
                bytes,
                seconds,
            } => {
                if *decoded == 0 && *seconds < 2.0 {
                    return;
                }
                format!(
                    "image cache {}: {images} images, {:.2} GB, {decoded} decoded now, ready in {seconds:.1} s",
                    path.display(),
                    *bytes as f64 / 1e9
                )
            }
            CacheEvent::InMemory { reason } => {
                format!("warning: {reason}; the images are decoded into memory")
            }
        };
        say(line);
    })
}

/// Why the pair `p` from folder `dir` is too small for `role`, if it is.
pub fn too_small(p: &ImagePair, dir: &Path, scale: usize, role: Role) -> Option<DataError> {
    let (side, hw, what) = match role {
        Role::Training { crop } => (
            crop,
            (p.lr.height, p.lr.width),
            format!("LR, for crop {crop}"),
        ),
        Role::Scoring => (
            crate::metrics::smallest_scored_side(scale),
            (p.hr.height, p.hr.width),
            format!("HR, to be scored with {scale} pixels shaved"),
        ),
    };
    (hw.0 < side || hw.1 < side).then(|| DataError::TooSmall {
        name: format!("{} ({what})", dir.join(&p.name).display()),
        hw,
        need: (side, side),
    })
}

/// The checkout's asset folders the embedded images were built from.
fn asset_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
}

/// Loads one configured split (HR folder, optional LR folder paired by name).
/// When the folder is the default `assets/train` or `assets/val` and it is
/// not on disk (an installed binary), the copy embedded in the binary is used.
pub fn load_split(
    split: &DataSplit,
    scale: usize,
    cache: &DataCache,
) -> Result<Dataset, DataError> {
    if let Some(embedded) = embedded_default(split, scale) {
        return embedded;
    }
    Dataset::load_checked(
        &split.root_hr,
        split.root_lr.as_deref(),
        scale,
        cache,
        &|_| None,
    )
}

/// The embedded copy, when `split` is the default `assets/train` or
/// `assets/val` and that folder is not on disk.
fn embedded_default(split: &DataSplit, scale: usize) -> Option<Result<Dataset, DataError>> {
    if split.root_hr.exists() || split.root_lr.is_some() {
        return None;
    }
    if split.root_hr == asset_dir("train") {
        return Some(default_train(scale));
    }
    if split.root_hr == asset_dir("val") {
        return Some(default_val(scale));
    }
    None
}

/// A benchmark folder's HR folder and LR folder, if it has one.
fn benchmark_folders(dir: &Path) -> (PathBuf, Option<PathBuf>) {
    let hr = dir.join("HR");
    if hr.is_dir() {
        let lr = ["LR", "LR_bicubic"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_dir());
        return (hr, lr);
    }
    (dir.to_path_buf(), None)
}
