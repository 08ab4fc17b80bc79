//! HR/LR image pairs from folders (DIV2K layout or HR only), paired by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cache::{self, DataCache, Source};
use super::image::load_rgb;
use super::image8::Image8;
use super::resize::{check_scale, downscale, modcrop};
use super::{DataError, RgbImage};

/// File extensions (compared case-insensitively) taken as images.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// One training or validation example.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePair {
    /// The HR file name (e.g. `0001.png`), used in messages and reports.
    pub name: String,
    /// The HR image, modcropped so that its sides are multiples of the scale.
    pub hr: Image8,
    /// The LR image, exactly `hr.height / scale` x `hr.width / scale`.
    pub lr: Image8,
}

impl ImagePair {
    /// The pair's centred `side` x `side` LR window (smaller where the image
    /// is) and the HR window over it: the same pixels every time.
    pub fn centre_crop(&self, side: usize, scale: usize) -> ImagePair {
        let (h, w) = (side.min(self.lr.height), side.min(self.lr.width));
        let (top, left) = ((self.lr.height - h) / 2, (self.lr.width - w) / 2);
        ImagePair {
            name: self.name.clone(),
            lr: self.lr.crop(top, left, h, w),
            hr: self
                .hr
                .crop(top * scale, left * scale, h * scale, w * scale),
        }
    }
}

/// A set of decoded HR/LR pairs as 8-bit images, in memory or mapped from
/// the decoded cache, so that every image is read and decoded once.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// The pairs, sorted by HR file name.
    pub pairs: Vec<ImagePair>,
    /// The upscaling factor linking LR to HR.
    pub scale: usize,
    /// Where the images came from (folder or "embedded …"), for display.
    pub source: String,
}

impl Dataset {
    /// Load a dataset from folders.
    ///
    /// * With `lr_dir`: every HR image in `hr_dir` is paired **by name** with
    ///   an LR image in `lr_dir/X<scale>/` if that folder exists, else in
    ///   `lr_dir`; the LR of `0001.png` may be called `0001x2.png` (DIV2K,
    ///   also `0001_x2`, `0001X2`) or `0001.png`, any image extension. Files
    ///   without a partner, in either folder, are an error that lists them; an
    ///   LR whose size is not the modcropped HR size / `scale` is an error.
    /// * Without `lr_dir`: each LR is made from the modcropped HR by MATLAB's
    ///   bicubic downscale ([`downscale`]).
    ///
    /// Image files have the extensions in [`IMAGE_EXTENSIONS`]; other files
    /// are ignored. A missing or image-less folder is an error.
    pub fn load(hr_dir: &Path, lr_dir: Option<&Path>, scale: usize) -> Result<Dataset, DataError> {
        Dataset::load_checked(hr_dir, lr_dir, scale, &DataCache::in_memory(), &|_| None)
    }

    /// [`Dataset::load`] through the decoded cache `cache` (the images are
    /// decoded once and mapped afterwards, [`super::cache`]), every pair
    /// also given to `check` (e.g. a size rule for training or scoring);
    /// every problem, of decoding, pairing or `check`, is collected, so one
    /// error names all the files at fault.
    pub fn load_checked(
        hr_dir: &Path,
        lr_dir: Option<&Path>,
        scale: usize,
        cache: &DataCache,
        check: &(dyn Fn(&ImagePair) -> Option<DataError> + Sync),
    ) -> Result<Dataset, DataError> {
        check_scale(scale)?;
        let hr_files = list_images(hr_dir)?;
        let hr_named = keyed_by_stem(hr_dir, &hr_files)?;
        let source = match lr_dir {
            Some(lr) => format!("{} + {}", hr_dir.display(), lr.display()),
            None => format!("{} (LR by bicubic x{scale} downscale)", hr_dir.display()),
        };
        let (sources, lr_dir) = match lr_dir {
            None => {
                let sources = hr_files
                    .iter()
                    .map(|hr| Source {
                        name: file_name(hr),
                        hr: hr.clone(),
                        lr: None,
                    })
                    .collect::<Vec<_>>();
                (sources, None)
            }
            Some(lr_dir) => {
                let lr_dir = resolve_lr_dir(lr_dir, scale);
                let lr_files = list_images(&lr_dir)?;
                let matched = match_by_name(hr_dir, &hr_named, &lr_dir, &lr_files, scale)?;
                let sources = matched
                    .into_iter()
                    .map(|(hr, lr)| Source {
                        name: file_name(&hr),
                        hr,
                        lr: Some(lr),
                    })
                    .collect::<Vec<_>>();
                (sources, Some(lr_dir))
            }
        };
        let make = |s: &Source| make_pair(s, scale);
        let made = cache::pairs_of(&sources, hr_dir, lr_dir.as_deref(), scale, cache, &make)?;
        let mut pairs = Vec::with_capacity(made.len());
        let mut problems = Vec::new();
        for pair in made {
            match pair {
                Ok(p) => {
                    problems.extend(check(&p));
                    pairs.push(p);
                }
                Err(e) => problems.push(e),
            }
        }
        DataError::all(problems)?;
        Ok(Dataset {
            pairs,
            scale,
            source,
        })
    }

    /// A dataset from named HR images, each LR made by MATLAB's bicubic
    /// downscale of the modcropped HR. Pairs keep the given order.
    pub fn from_hr_images(
        images: Vec<(String, RgbImage)>,
        scale: usize,
        source: &str,
    ) -> Result<Dataset, DataError> {
        check_scale(scale)?;
        let pairs = images
            .into_iter()
            .map(|(name, hr)| pair_from_hr(name, hr, scale))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Dataset {
            pairs,
            scale,
            source: source.to_string(),
        })
    }

    /// Every pair cut to its centred `side` x `side` LR window
    /// ([`ImagePair::centre_crop`]).
    pub fn centre_cropped(&self, side: usize) -> Dataset {
        Dataset {
            pairs: self
                .pairs
                .iter()
                .map(|p| p.centre_crop(side, self.scale))
                .collect(),
            scale: self.scale,
            source: format!("{} (centred {side} px LR crops)", self.source),
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// One pair from its files: the HR decoded and modcropped, the LR decoded
/// and checked, or made by bicubic downscaling.
fn make_pair(source: &Source, scale: usize) -> Result<ImagePair, DataError> {
    let hr = load_rgb(&source.hr)?;
    match &source.lr {
        None => pair_from_hr(source.name.clone(), hr, scale),
        Some(lr_path) => checked_pair(&source.hr, hr, lr_path, load_rgb(lr_path)?, scale),
    }
}

/// Modcrop `hr` and make its LR.
fn pair_from_hr(name: String, hr: RgbImage, scale: usize) -> Result<ImagePair, DataError> {
    if hr.height < scale || hr.width < scale {
        return Err(DataError::TooSmall {
            name,
            hw: (hr.height, hr.width),
            need: (scale, scale),
        });
    }
    let hr = modcrop(&hr, scale)?;
    let lr = downscale(&hr, scale)?;
    Ok(ImagePair {
        name,
        hr: Image8::from_rgb(&hr),
        lr: Image8::from_rgb(&lr),
    })
}

/// Modcrop `hr` and check that `lr` is its size / `scale`.
fn checked_pair(
    hr_path: &Path,
    hr: RgbImage,
    lr_path: &Path,
    lr: RgbImage,
    scale: usize,
) -> Result<ImagePair, DataError> {
    let name = file_name(hr_path);
    let expected = (hr.height / scale, hr.width / scale);
    if expected.0 == 0 || expected.1 == 0 || (lr.height, lr.width) != expected {
        return Err(DataError::LrSizeMismatch {
            path: lr_path.to_path_buf(),
            hr_name: name,
            lr_hw: (lr.height, lr.width),
            hr_hw: (hr.height, hr.width),
            scale,
        });
    }
    let hr = modcrop(&hr, scale)?;
    Ok(ImagePair {
        name,
        hr: Image8::from_rgb(&hr),
        lr: Image8::from_rgb(&lr),
    })
}

/// The file name of `path` as text.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The file name without its extension.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `path` has one of [`IMAGE_EXTENSIONS`] (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

/// The image files directly inside `dir`, sorted by file name. A missing
/// folder or one without images is an error.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir {
            path: dir.to_path_buf(),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, &e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, &e))?.path();
        if path.is_file() && is_image_file(&path) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(DataError::EmptyDir {
            path: dir.to_path_buf(),
        });
    }
    files.sort_by_key(|p| file_name(p));
    Ok(files)
}

/// `lr_dir/X<scale>` (or `x<scale>`) when it is a folder, else `lr_dir`.
fn resolve_lr_dir(lr_dir: &Path, scale: usize) -> PathBuf {
    for sub in [format!("X{scale}"), format!("x{scale}")] {
        let candidate = lr_dir.join(sub);
        if candidate.is_dir() {
            return candidate;
        }
    }
    lr_dir.to_path_buf()
}

/// Files keyed by stem; two files with one stem are an error.
fn keyed_by_stem(dir: &Path, files: &[PathBuf]) -> Result<BTreeMap<String, PathBuf>, DataError> {
    let mut map = BTreeMap::new();
    for path in files {
        if let Some(previous) = map.insert(stem(path), path.clone()) {
            return Err(DataError::DuplicateName {
                dir: dir.to_path_buf(),
                name: stem(path),
                first: file_name(&previous),
                second: file_name(path),
            });
        }
    }
    Ok(map)
}

/// The HR name an LR file stem stands for: the stem itself if an HR image has
/// that name, else the stem without a `x<scale>` / `X<scale>` / `_x<scale>`
/// suffix if that is an HR name. Trying the plain stem first keeps HR names
/// that themselves end in `x2` working.
fn lr_key(lr_stem: &str, scale: usize, hr: &BTreeMap<String, PathBuf>) -> Option<String> {
    if hr.contains_key(lr_stem) {
        return Some(lr_stem.to_string());
    }
    for suffix in [
        format!("x{scale}"),
        format!("X{scale}"),
        format!("_x{scale}"),
        format!("_X{scale}"),
    ] {
        if let Some(base) = lr_stem.strip_suffix(&suffix) {
            if hr.contains_key(base) {
                return Some(base.to_string());
            }
        }
    }
    None
}

/// `(hr_path, lr_path)` for every HR image, in HR name order; any file
/// without a partner (either side) or two LR files for one HR is an error.
fn match_by_name(
    hr_dir: &Path,
    hr: &BTreeMap<String, PathBuf>,
    lr_dir: &Path,
    lr_files: &[PathBuf],
    scale: usize,
) -> Result<Vec<(PathBuf, PathBuf)>, DataError> {
    let mut lr_for: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut lr_only = Vec::new();
    for path in lr_files {
        match lr_key(&stem(path), scale, hr) {
            Some(key) => {
                if let Some(previous) = lr_for.insert(key.clone(), path.clone()) {
                    return Err(DataError::DuplicateName {
                        dir: lr_dir.to_path_buf(),
                        name: key,
                        first: file_name(&previous),
                        second: file_name(path),
                    });
                }
            }
            None => lr_only.push(file_name(path)),
        }
    }
    let hr_only: Vec<String> = hr
        .iter()
        .filter(|(key, _)| !lr_for.contains_key(*key))
        .map(|(_, path)| file_name(path))
        .collect();
    if !hr_only.is_empty() || !lr_only.is_empty() {
        return Err(DataError::Unpaired {
            hr_dir: hr_dir.to_path_buf(),
            lr_dir: lr_dir.to_path_buf(),
            hr_only,
            lr_only,
        });
    }
    let mut pairs: Vec<(PathBuf, PathBuf)> = hr
        .iter()
        .map(|(key, hr_path)| (hr_path.clone(), lr_for[key].clone()))
        .collect();
    pairs.sort_by_key(|(h, _)| file_name(h));
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hr_names(names: &[&str]) -> BTreeMap<String, PathBuf> {
        names
            .iter()
            .map(|n| (n.to_string(), PathBuf::from(format!("{n}.png"))))
            .collect()
    }

    #[test]
    fn lr_names_map_to_hr_names() {
        let hr = hr_names(&["0001", "box2", "baby"]);
        assert_eq!(lr_key("0001x2", 2, &hr).as_deref(), Some("0001"));
        assert_eq!(lr_key("0001X2", 2, &hr).as_deref(), Some("0001"));
        assert_eq!(lr_key("0001", 2, &hr).as_deref(), Some("0001"));
        assert_eq!(lr_key("baby_x2", 2, &hr).as_deref(), Some("baby"));
        assert_eq!(lr_key("box2", 2, &hr).as_deref(), Some("box2"));
        assert_eq!(lr_key("box2x2", 2, &hr).as_deref(), Some("box2"));
        assert_eq!(lr_key("0001x3", 2, &hr), None);
        assert_eq!(lr_key("0002x2", 2, &hr), None);
    }

    #[test]
    fn image_extensions_are_case_insensitive() {
        assert!(is_image_file(Path::new("a/B.PNG")));
        assert!(is_image_file(Path::new("c.JpEg")));
        assert!(is_image_file(Path::new("d.bmp")));
        assert!(!is_image_file(Path::new("e.txt")));
        assert!(!is_image_file(Path::new("png")));
    }
}
