//! The default dataset compiled into the binary (`assets/`, see
//! `assets/ATTRIBUTION.md`): six small real photographs for training and two
//! smaller ones kept for validation only, so that the program runs with no
//! data of its own. LR images are made by MATLAB's bicubic downscale.

use super::image::load_rgb_from_memory;
use super::{DataError, Dataset};

/// `(file name, PNG bytes)` of the training images.
const TRAIN: [(&str, &[u8]); 6] = [
    (
        "astronaut.png",
        include_bytes!("../../assets/train/astronaut.png"),
    ),
    ("brick.png", include_bytes!("../../assets/train/brick.png")),
    (
        "chelsea.png",
        include_bytes!("../../assets/train/chelsea.png"),
    ),
    (
        "gravel.png",
        include_bytes!("../../assets/train/gravel.png"),
    ),
    (
        "keong_macan.png",
        include_bytes!("../../assets/train/keong_macan.png"),
    ),
    (
        "riaphotographs.png",
        include_bytes!("../../assets/train/riaphotographs.png"),
    ),
];

/// `(file name, PNG bytes)` of the validation images.
const VAL: [(&str, &[u8]); 2] = [
    (
        "bliznaca.png",
        include_bytes!("../../assets/val/bliznaca.png"),
    ),
    ("coffee.png", include_bytes!("../../assets/val/coffee.png")),
];

fn decode(files: &[(&str, &[u8])], scale: usize, source: &str) -> Result<Dataset, DataError> {
    let images = files
        .iter()
        .map(|&(name, bytes)| Ok((name.to_string(), load_rgb_from_memory(bytes, name)?)))
        .collect::<Result<Vec<_>, DataError>>()?;
    Dataset::from_hr_images(images, scale, source)
}

/// The embedded training set (6 images, 144..240 px sides) for `scale`.
pub fn default_train(scale: usize) -> Result<Dataset, DataError> {
    decode(&TRAIN, scale, "embedded default training set")
}

/// The embedded validation set (2 images, 288x192 and 240x240 HR) for `scale`.
pub fn default_val(scale: usize) -> Result<Dataset, DataError> {
    decode(&VAL, scale, "embedded default validation set")
}
