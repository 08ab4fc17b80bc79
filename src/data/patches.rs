//! Random aligned LR/HR training patches with flips and 90° rotations.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{DataError, Dataset, Image8};

/// Which random augmentations are applied (each with probability 1/2, the
/// same to the LR and HR patch). With all three on, the 8 orientations of
/// the square are equally likely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Mirror left-right.
    pub hflip: bool,
    /// Mirror top-bottom.
    pub vflip: bool,
    /// Rotate by 90° counter-clockwise.
    pub rot90: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        hflip: false,
        vflip: false,
        rot90: false,
    };
    /// Every augmentation (the reference configuration).
    pub const ALL: Augment = Augment {
        hflip: true,
        vflip: true,
        rot90: true,
    };
}

impl Default for Augment {
    fn default() -> Self {
        Augment::ALL
    }
}

/// A training batch as flat `f32` buffers on the 0..1 scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// LR patches, `[batch, 3, crop, crop]` row-major.
    pub lr: Vec<f32>,
    /// Matching HR patches, `[batch, 3, crop * scale, crop * scale]`.
    pub hr: Vec<f32>,
    /// Patches in the batch.
    pub batch: usize,
    /// LR patch side in pixels.
    pub crop: usize,
    /// Upscaling factor (HR side = `crop * scale`).
    pub scale: usize,
}

impl Batch {
    /// Shape of [`Batch::lr`]: `[batch, 3, crop, crop]`.
    pub fn lr_shape(&self) -> [usize; 4] {
        [self.batch, 3, self.crop, self.crop]
    }

    /// Shape of [`Batch::hr`]: `[batch, 3, crop * scale, crop * scale]`.
    pub fn hr_shape(&self) -> [usize; 4] {
        let side = self.crop * self.scale;
        [self.batch, 3, side, side]
    }
}

/// Everything needed to continue a sampler exactly where it stopped
/// (serialise it with the training checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerState {
    /// LR patch side in pixels.
    pub crop: usize,
    /// Patches per batch.
    pub batch: usize,
    /// Augmentations applied.
    pub augment: Augment,
    /// The seed the sampler started from.
    pub seed: u64,
    /// Batches drawn so far.
    pub batches_drawn: u64,
    /// The random generator, mid-stream.
    pub rng: ChaCha8Rng,
}

/// Draws random, aligned LR/HR patch batches from a [`Dataset`].
///
/// Each patch: a uniformly chosen image, a uniformly chosen `crop` x `crop`
/// LR window and the HR window `scale` times larger at the same place, then
/// the enabled augmentations. The same seed gives the same batches.
#[derive(Debug, Clone)]
pub struct PatchSampler {
    dataset: Arc<Dataset>,
    state: SamplerState,
}

impl PatchSampler {
    /// A sampler of `batch` patches of `crop` LR pixels, seeded with `seed`.
    /// Errors if `crop` or `batch` is 0, the dataset is empty, an LR image is
    /// smaller than `crop` (naming it), or a pair is not LR x scale = HR.
    pub fn new(
        dataset: Arc<Dataset>,
        crop: usize,
        batch: usize,
        augment: Augment,
        seed: u64,
    ) -> Result<PatchSampler, DataError> {
        let state = SamplerState {
            crop,
            batch,
            augment,
            seed,
            batches_drawn: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        PatchSampler::resume(dataset, state)
    }

    /// A sampler continuing from a saved [`SamplerState`] (same checks as
    /// [`PatchSampler::new`]).
    pub fn resume(dataset: Arc<Dataset>, state: SamplerState) -> Result<PatchSampler, DataError> {
        validate(&dataset, state.crop, state.batch)?;
        Ok(PatchSampler { dataset, state })
    }

    /// The current state; clone and serialise it to resume later.
    pub fn state(&self) -> &SamplerState {
        &self.state
    }

    /// The dataset patches are drawn from.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Batch {
        let SamplerState {
            crop,
            batch,
            augment,
            ..
        } = self.state;
        let scale = self.dataset.scale;
        let hr_side = crop * scale;
        let mut out = Batch {
            lr: vec![0.0; batch * 3 * crop * crop],
            hr: vec![0.0; batch * 3 * hr_side * hr_side],
            batch,
            crop,
            scale,
        };
        let pairs = &self.dataset.pairs;
        let rng = &mut self.state.rng;
        for b in 0..batch {
            // u32 ranges keep the stream identical on 32- and 64-bit targets.
            let pair = &pairs[rng.random_range(0..pairs.len() as u32) as usize];
            let top = rng.random_range(0..=(pair.lr.height - crop) as u32) as usize;
            let left = rng.random_range(0..=(pair.lr.width - crop) as u32) as usize;
            // Always draw all three so toggling one does not move the crops.
            let flips = Orientation {
                hflip: rng.random::<bool>() && augment.hflip,
                vflip: rng.random::<bool>() && augment.vflip,
                rot90: rng.random::<bool>() && augment.rot90,
            };
            let lr_len = 3 * crop * crop;
            let hr_len = 3 * hr_side * hr_side;
            extract(
                &pair.lr,
                top,
                left,
                crop,
                flips,
                &mut out.lr[b * lr_len..(b + 1) * lr_len],
            );
            extract(
                &pair.hr,
                top * scale,
                left * scale,
                hr_side,
                flips,
                &mut out.hr[b * hr_len..(b + 1) * hr_len],
            );
        }
        self.state.batches_drawn += 1;
        out
    }
}

fn validate(dataset: &Dataset, crop: usize, batch: usize) -> Result<(), DataError> {
    if crop == 0 {
        return Err(DataError::invalid("crop", crop, "must be >= 1 LR pixel"));
    }
    if batch == 0 {
        return Err(DataError::invalid("batch", batch, "must be >= 1"));
    }
    if dataset.pairs.is_empty() {
        return Err(DataError::invalid(
            "dataset",
            &dataset.source,
            "holds no images to draw patches from",
        ));
    }
    if u32::try_from(dataset.pairs.len()).is_err() {
        return Err(DataError::invalid(
            "dataset",
            dataset.pairs.len(),
            "at most 2^32 - 1 images",
        ));
    }
    let s = dataset.scale;
    for pair in &dataset.pairs {
        let (lr, hr) = (&pair.lr, &pair.hr);
        if (hr.height, hr.width) != (lr.height * s, lr.width * s) {
            return Err(DataError::SizeMismatch {
                what: format!("image {:?}: HR vs LR x{s}", pair.name),
                a: (hr.height, hr.width),
                b: (lr.height * s, lr.width * s),
            });
        }
        if lr.height < crop || lr.width < crop {
            return Err(DataError::TooSmall {
                name: format!("{} (LR, for crop {crop})", pair.name),
                hw: (lr.height, lr.width),
                need: (crop, crop),
            });
        }
    }
    Ok(())
}

/// The augmentation drawn for one patch.
#[derive(Debug, Clone, Copy)]
struct Orientation {
    hflip: bool,
    vflip: bool,
    rot90: bool,
}

/// Copy the `side` x `side` window at `(top, left)` of `img` into `dst`
/// (CHW, 0..1), transformed as `rot90(vflip(hflip(window)))`.
fn extract(img: &Image8, top: usize, left: usize, side: usize, o: Orientation, dst: &mut [f32]) {
    const TO_UNIT: f32 = 1.0 / 255.0;
    let last = side - 1;
    for c in 0..3 {
        let plane = img.plane(c);
        let dst_plane = &mut dst[c * side * side..(c + 1) * side * side];
        for y in 0..side {
            for x in 0..side {
                // Walk the transforms backwards: output -> source position.
                let (mut sy, mut sx) = if o.rot90 { (x, last - y) } else { (y, x) };
                if o.vflip {
                    sy = last - sy;
                }
                if o.hflip {
                    sx = last - sx;
                }
                dst_plane[y * side + x] =
                    f32::from(plane[(top + sy) * img.width + left + sx]) * TO_UNIT;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The red plane of a 2x2 image pulled through a transform, back on 0..255.
    fn window(o: Orientation) -> Vec<f32> {
        let img = Image8::from_rgb(
            &super::super::RgbImage::new(2, 2, (0..12).map(|v| v as f32).collect()).unwrap(),
        );
        let mut dst = vec![0.0; 12];
        extract(&img, 0, 0, 2, o, &mut dst);
        dst[..4].iter().map(|v| (v * 255.0).round()).collect()
    }

    #[test]
    fn transforms_move_pixels_as_named() {
        let none = Orientation {
            hflip: false,
            vflip: false,
            rot90: false,
        };
        // Source   0 1
        //          2 3
        assert_eq!(window(none), vec![0., 1., 2., 3.]);
        assert_eq!(
            window(Orientation {
                hflip: true,
                ..none
            }),
            vec![1., 0., 3., 2.]
        );
        assert_eq!(
            window(Orientation {
                vflip: true,
                ..none
            }),
            vec![2., 3., 0., 1.]
        );
        // Counter-clockwise: the right column becomes the top row.
        assert_eq!(
            window(Orientation {
                rot90: true,
                ..none
            }),
            vec![1., 3., 0., 2.]
        );
    }
}
