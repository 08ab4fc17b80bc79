//! Images, MATLAB-compatible bicubic resizing, datasets and training patches
//! (spec §6).
//!
//! Datasets hold 8-bit images ([`Image8`], decoded once into a mapped cache
//! file, [`cache`]); resizing and scoring work on `f32` buffers ([`RgbImage`],
//! channel-major, values 0..255), patches are `f32` on 0..1; turning batches
//! into tensors is the model's business.

pub mod cache;
pub mod dataset;
pub mod embedded;
pub mod image;
pub mod image8;
pub mod patches;
pub mod resize;

pub use self::image::{load_rgb, load_rgb_from_memory, save_rgb, save_rgb_png, RgbImage};
pub use cache::{CacheEvent, CachePlace, DataCache};
pub use dataset::{Dataset, ImagePair};
pub use embedded::{default_train, default_val};
pub use image8::Image8;
pub use patches::{Augment, Batch, PatchSampler, SamplerState};
pub use resize::{downscale, imresize, modcrop, upscale_bicubic};

use std::path::{Path, PathBuf};

/// Why an image, a dataset or a batch could not be produced.
///
/// Every message is one line and names the file, folder or value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("cannot access {}: {reason}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// A file is not an image this crate can decode (PNG, JPEG, BMP).
    #[error("{}: cannot decode image ({reason}); supported: PNG, JPEG, BMP in 8 or 16 bit gray, gray+alpha, RGB or RGBA", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image could not be encoded as PNG.
    #[error("{}: cannot write PNG ({reason})", path.display())]
    Encode {
        /// The destination file.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
    /// A dataset folder does not exist or is not a folder.
    #[error("{}: dataset folder does not exist or is not a folder", path.display())]
    MissingDir {
        /// The folder.
        path: PathBuf,
    },
    /// A dataset folder holds no image files.
    #[error("{}: no image files (.png, .jpg, .jpeg, .bmp) in this folder", path.display())]
    EmptyDir {
        /// The folder.
        path: PathBuf,
    },
    /// Two files in one folder map to the same image name.
    #[error("{}: files {first:?} and {second:?} both give the image name {name:?}; keep one", dir.display())]
    DuplicateName {
        /// The folder.
        dir: PathBuf,
        /// The shared image name.
        name: String,
        /// One file.
        first: String,
        /// The other file.
        second: String,
    },
    /// HR and LR folders do not hold the same image names.
    #[error("{}", unpaired_message(hr_dir, lr_dir, hr_only, lr_only))]
    Unpaired {
        /// The HR folder.
        hr_dir: PathBuf,
        /// The LR folder actually searched.
        lr_dir: PathBuf,
        /// HR files with no LR partner.
        hr_only: Vec<String>,
        /// LR files with no HR partner.
        lr_only: Vec<String>,
    },
    /// An LR image is not the size of its (modcropped) HR image divided by the scale.
    #[error("{}: LR image is {}x{} (HxW) but HR {hr_name:?} is {}x{}, so x{scale} LR must be {}x{}", path.display(), lr_hw.0, lr_hw.1, hr_hw.0, hr_hw.1, hr_hw.0 / scale, hr_hw.1 / scale)]
    LrSizeMismatch {
        /// The LR file.
        path: PathBuf,
        /// The HR file name.
        hr_name: String,
        /// LR height and width.
        lr_hw: (usize, usize),
        /// HR height and width (before modcrop).
        hr_hw: (usize, usize),
        /// The upscaling factor.
        scale: usize,
    },
    /// An image is too small for what is asked of it.
    #[error("image {name:?} is {}x{} (HxW), smaller than the required {}x{}", hw.0, hw.1, need.0, need.1)]
    TooSmall {
        /// The image name.
        name: String,
        /// Its height and width.
        hw: (usize, usize),
        /// The minimum height and width.
        need: (usize, usize),
    },
    /// Two images that must have the same size do not.
    #[error("{what}: sizes differ, {}x{} vs {}x{} (HxW)", a.0, a.1, b.0, b.1)]
    SizeMismatch {
        /// What was being compared.
        what: String,
        /// First size.
        a: (usize, usize),
        /// Second size.
        b: (usize, usize),
    },
    /// Several images cannot be used; each problem in order.
    #[error("{} images cannot be used: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<DataError>),
    /// An argument is out of its allowed range.
    #[error("invalid {name} = {value}: {allowed}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

impl DataError {
    /// One error for a list of problems: `Ok` when there are none, the
    /// problem itself when there is one, else [`DataError::Several`].
    pub fn all(mut problems: Vec<DataError>) -> Result<(), DataError> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(DataError::Several(problems)),
        }
    }

    /// The problems one by one (a [`DataError::Several`] opened up).
    pub fn problems(&self) -> Vec<String> {
        match self {
            DataError::Several(all) => all.iter().map(|e| e.to_string()).collect(),
            e => vec![e.to_string()],
        }
    }

    /// An [`DataError::Io`] for `path` from an `std::io::Error`.
    pub fn io(path: &Path, err: &std::io::Error) -> DataError {
        DataError::Io {
            path: path.to_path_buf(),
            reason: err.to_string(),
        }
    }

    /// An [`DataError::InvalidArgument`].
    pub fn invalid(name: &'static str, value: impl ToString, allowed: &'static str) -> DataError {
        DataError::InvalidArgument {
            name,
            value: value.to_string(),
            allowed,
        }
    }
}

/// How many names an error message lists before saying "and N more".
const LISTED_NAMES: usize = 5;

/// `a, b, c and 7 more`: a short list for one-line messages.
fn short_list(names: &[String]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .take(LISTED_NAMES)
        .map(String::as_str)
        .collect();
    let mut text = shown.join(", ");
    if names.len() > LISTED_NAMES {
        text.push_str(&format!(" and {} more", names.len() - LISTED_NAMES));
    }
    text
}

fn unpaired_message(
    hr_dir: &Path,
    lr_dir: &Path,
    hr_only: &[String],
    lr_only: &[String],
) -> String {
    let mut parts = Vec::new();
    if !hr_only.is_empty() {
        parts.push(format!(
            "{} HR image(s) in {} have no LR partner: {}",
            hr_only.len(),
            hr_dir.display(),
            short_list(hr_only)
        ));
    }
    if !lr_only.is_empty() {
        parts.push(format!(
            "{} LR image(s) in {} have no HR partner: {}",
            lr_only.len(),
            lr_dir.display(),
            short_list(lr_only)
        ));
    }
    format!(
        "{} (LR for HR NAME.png is NAMEx<scale>.<ext> or NAME.<ext>)",
        parts.join("; ")
    )
}
