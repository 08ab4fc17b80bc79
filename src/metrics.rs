//! PSNR and SSIM on the Y channel, the way SR papers report them (spec §6).
//!
//! The super-resolved image is first stored as 8-bit (clip to 0..255, round),
//! both images are converted to BT.601 luma `Y = 16 + (65.481 R + 128.553 G +
//! 24.966 B) / 255` (RGB on 0..255, Y kept as a float), and `shave` pixels are
//! removed from every border (the scale, by convention). A set is scored per
//! image and then averaged ([`SetScores`]), by every caller alike: the
//! fitness, the full training, the benchmarks, the report and `bench`.

use crate::data::{upscale_bicubic, DataError, Dataset, ImagePair, RgbImage};

/// The PSNR reported for identical images (and the cap for any PSNR): a finite
/// value keeps fitness sortable and JSON-serialisable, and 100 dB is far above
/// anything a real reconstruction reaches.
pub const PSNR_CAP_DB: f64 = 100.0;

/// Side of the SSIM Gaussian window.
const SSIM_WINDOW: usize = 11;

/// The smallest HR side that can be scored with `shave` border pixels
/// removed (PSNR and SSIM alike: SSIM's window must fit what is left).
pub fn smallest_scored_side(shave: usize) -> usize {
    2 * shave + SSIM_WINDOW
}
/// Standard deviation of the SSIM Gaussian window.
const SSIM_SIGMA: f64 = 1.5;
/// SSIM stabilisers `(K1 L)^2` and `(K2 L)^2` with L = 255.
const SSIM_C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
const SSIM_C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);

/// BT.601 luma of an RGB image on the 0..255 scale, row-major, not rounded.
pub fn rgb_to_y(img: &RgbImage) -> Vec<f32> {
    luma(img).into_iter().map(|y| y as f32).collect()
}

/// Luma in `f64`, the precision the metrics are computed in.
fn luma(img: &RgbImage) -> Vec<f64> {
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((&r, &g), &b)| {
            16.0 + (65.481 * f64::from(r) + 128.553 * f64::from(g) + 24.966 * f64::from(b)) / 255.0
        })
        .collect()
}

/// Y of both images (the SR one quantised to 8 bit first), `shave` pixels cut
/// from every border. Returns `(sr_y, hr_y, height, width)`.
fn shaved_luma(
    sr: &RgbImage,
    hr: &RgbImage,
    shave: usize,
    min_side: usize,
) -> Result<(Vec<f64>, Vec<f64>, usize, usize), DataError> {
    if (sr.height, sr.width) != (hr.height, hr.width) {
        return Err(DataError::SizeMismatch {
            what: "SR output vs HR image".to_string(),
            a: (sr.height, sr.width),
            b: (hr.height, hr.width),
        });
    }
    let need = 2 * shave + min_side;
    if hr.height < need || hr.width < need {
        return Err(DataError::TooSmall {
            name: format!("HR image (shave {shave})"),
            hw: (hr.height, hr.width),
            need: (need, need),
        });
    }
    let (h, w) = (hr.height - 2 * shave, hr.width - 2 * shave);
    let sr = sr.quantized().crop(shave, shave, h, w)?;
    let hr = hr.crop(shave, shave, h, w)?;
    Ok((luma(&sr), luma(&hr), h, w))
}

/// Y-channel PSNR in dB of `sr` against `hr` with `shave` border pixels
/// removed; capped at [`PSNR_CAP_DB`] (identical images give exactly the cap).
/// Errors if the sizes differ or nothing is left after shaving.
pub fn psnr_y(sr: &RgbImage, hr: &RgbImage, shave: usize) -> Result<f64, DataError> {
    let (a, b, _, _) = shaved_luma(sr, hr, shave, 1)?;
    let mse = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        return Ok(PSNR_CAP_DB);
    }
    Ok((10.0 * (255.0 * 255.0 / mse).log10()).min(PSNR_CAP_DB))
}

/// Y-channel SSIM of `sr` against `hr` with `shave` border pixels removed:
/// 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, data range 255,
/// population (co)variances, mean over the positions where the window fits
/// entirely (no padding). Errors if the sizes differ or the shaved image is
/// smaller than the window.
pub fn ssim_y(sr: &RgbImage, hr: &RgbImage, shave: usize) -> Result<f64, DataError> {
    let (a, b, h, w) = shaved_luma(sr, hr, shave, SSIM_WINDOW)?;
    let kernel = gaussian_kernel();
    let filter = |img: &[f64]| valid_filter(img, h, w, &kernel);
    let aa: Vec<f64> = a.iter().map(|v| v * v).collect();
    let bb: Vec<f64> = b.iter().map(|v| v * v).collect();
    let ab: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let (mu_a, mu_b) = (filter(&a), filter(&b));
    let (e_aa, e_bb, e_ab) = (filter(&aa), filter(&bb), filter(&ab));
    let mut total = 0.0;
    for i in 0..mu_a.len() {
        let (ma, mb) = (mu_a[i], mu_b[i]);
        let var_a = e_aa[i] - ma * ma;
        let var_b = e_bb[i] - mb * mb;
        let cov = e_ab[i] - ma * mb;
        total += ((2.0 * ma * mb + SSIM_C1) * (2.0 * cov + SSIM_C2))
            / ((ma * ma + mb * mb + SSIM_C1) * (var_a + var_b + SSIM_C2));
    }
    Ok(total / mu_a.len() as f64)
}

/// The normalised 1-D Gaussian (the 2-D window is its outer product).
fn gaussian_kernel() -> Vec<f64> {
    let centre = (SSIM_WINDOW / 2) as f64;
    let raw: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| {
            let d = i as f64 - centre;
            (-d * d / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp()
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.into_iter().map(|v| v / sum).collect()
}

/// Separable "valid" filtering of an `h` x `w` image with the outer product of
/// `kernel` with itself: `(h-k+1) x (w-k+1)` outputs.
fn valid_filter(img: &[f64], h: usize, w: usize, kernel: &[f64]) -> Vec<f64> {
    let k = kernel.len();
    let (oh, ow) = (h + 1 - k, w + 1 - k);
    // Rows first: h x ow.
    let mut rows = vec![0.0; h * ow];
    for y in 0..h {
        let src = &img[y * w..(y + 1) * w];
        for x in 0..ow {
            rows[y * ow + x] = kernel.iter().zip(&src[x..x + k]).map(|(a, b)| a * b).sum();
        }
    }
    // Then columns: oh x ow.
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        for (t, &kv) in kernel.iter().enumerate() {
            let src = &rows[(y + t) * ow..(y + t + 1) * ow];
            for (o, s) in out[y * ow..(y + 1) * ow].iter_mut().zip(src) {
                *o += kv * s;
            }
        }
    }
    out
}

/// Arithmetic mean (NaN for an empty slice, so an empty set is never scored 0).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Y-PSNR and Y-SSIM of one output against its HR image.
pub fn score_image(sr: &RgbImage, hr: &RgbImage, shave: usize) -> Result<(f64, f64), DataError> {
    Ok((psnr_y(sr, hr, shave)?, ssim_y(sr, hr, shave)?))
}

/// Plain bicubic upscaling's Y-PSNR and Y-SSIM on one pair (`lr`, `hr`):
/// the line every network is read against.
pub fn bicubic_image(lr: &RgbImage, hr: &RgbImage, scale: usize) -> Result<(f64, f64), DataError> {
    score_image(&upscale_bicubic(lr, scale)?, hr, scale)
}

/// Each image's score, in the set's order: (name, PSNR, SSIM).
pub type ImageScores = Vec<(String, f64, f64)>;

/// A set's score as the SR papers report it: each image scored, then the
/// means.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    /// Mean Y-PSNR (dB).
    pub psnr: f64,
    /// Mean Y-SSIM.
    pub ssim: f64,
    /// Per image, in the set's order.
    pub images: ImageScores,
}

impl Score {
    /// The score of images already scored one by one (means in their order;
    /// 0 for none, which every data loader refuses before this point).
    pub fn from_images(images: ImageScores) -> Score {
        let n = images.len().max(1) as f64;
        Score {
            psnr: images.iter().map(|i| i.1).sum::<f64>() / n,
            ssim: images.iter().map(|i| i.2).sum::<f64>() / n,
            images,
        }
    }

    /// Scores what `upscale` makes of every pair of `set`, shaving `shave`.
    pub fn of_set<E: From<DataError>>(
        set: &Dataset,
        shave: usize,
        mut upscale: impl FnMut(&ImagePair) -> Result<RgbImage, E>,
    ) -> Result<Score, E> {
        let mut images = Vec::with_capacity(set.pairs.len());
        for pair in &set.pairs {
            let (psnr, ssim) = score_image(&upscale(pair)?, &pair.hr.to_rgb(), shave)?;
            images.push((pair.name.clone(), psnr, ssim));
        }
        Ok(Score::from_images(images))
    }

    /// Plain bicubic upscaling's score on `set`.
    pub fn bicubic(set: &Dataset, scale: usize) -> Result<Score, DataError> {
        Score::of_set(set, scale, |pair| upscale_bicubic(&pair.lr.to_rgb(), scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> RgbImage {
        let data = (0..3 * h * w).map(|i| ((i * 37) % 251) as f32).collect();
        RgbImage::new(h, w, data).unwrap()
    }

    #[test]
    fn luma_of_white_and_black() {
        let img = RgbImage::new(1, 2, vec![255.0, 0.0, 255.0, 0.0, 255.0, 0.0]).unwrap();
        let y = rgb_to_y(&img);
        assert!((y[0] - 235.0).abs() < 1e-3);
        assert!((y[1] - 16.0).abs() < 1e-6);
    }

    #[test]
    fn identical_images_give_the_cap_and_ssim_one() {
        let img = ramp(20, 24);
        assert_eq!(psnr_y(&img, &img, 2).unwrap(), PSNR_CAP_DB);
        assert!((ssim_y(&img, &img, 2).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn psnr_of_a_known_offset() {
        let hr = RgbImage::filled(8, 8, 100.0);
        // +10 on every channel moves Y by 10 * 219 / 255.
        let sr = RgbImage::filled(8, 8, 110.0);
        let dy: f64 = 10.0 * (65.481 + 128.553 + 24.966) / 255.0;
        let expected = 10.0 * (255.0f64 * 255.0 / (dy * dy)).log10();
        assert!((psnr_y(&sr, &hr, 1).unwrap() - expected).abs() < 1e-9);
    }

    #[test]
    fn sr_is_quantised_before_measuring() {
        let hr = RgbImage::filled(8, 8, 100.0);
        let sr = RgbImage::filled(8, 8, 100.4);
        assert_eq!(psnr_y(&sr, &hr, 0).unwrap(), PSNR_CAP_DB);
    }

    #[test]
    fn mismatched_or_too_small_inputs_are_errors() {
        let a = ramp(20, 20);
        assert!(psnr_y(&a, &ramp(20, 21), 2).is_err());
        assert!(psnr_y(&a, &a, 10).is_err());
        assert!(ssim_y(&a, &a, 5).is_err());
        assert!(ssim_y(&a, &a, 4).is_ok());
    }

    #[test]
    fn gaussian_is_normalised_and_symmetric() {
        let k = gaussian_kernel();
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((k[0] - k[10]).abs() < 1e-15);
    }

    #[test]
    fn mean_of_values() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
        assert!(mean(&[]).is_nan());
    }
}
