//! MATLAB-compatible bicubic `imresize`, the way every SR benchmark makes its
//! LR images (spec §6).
//!
//! MATLAB's rules, reproduced here because no crate follows them exactly:
//! * cubic kernel with a = −0.5;
//! * when shrinking by `scale < 1`, the kernel is stretched by `1/scale`
//!   (antialiasing) and each output's weights are normalised to sum to 1;
//! * source positions `u = x/scale + (1 − 1/scale)/2` (1-based), taps
//!   `floor(u − width/2) + 0..ceil(width)+2`;
//! * indices past a border are mirrored (symmetric padding: … 2 1 | 1 2 …);
//! * separable: the height pass first, then the width pass (MATLAB resizes the
//!   dimension with the smaller scale first, and takes H first on ties, which
//!   is always the case for a scalar scale), both in `f32`.

use super::{DataError, RgbImage};

/// Taps for every output position along one axis.
struct Contributions {
    /// Taps per output position.
    taps: usize,
    /// `out_len * taps` normalised weights.
    weights: Vec<f32>,
    /// `out_len * taps` source indices (0-based, already mirrored).
    indices: Vec<usize>,
}

/// MATLAB's `cubic` kernel (Keys, a = −0.5).
fn cubic(x: f64) -> f64 {
    let ax = x.abs();
    let ax2 = ax * ax;
    let ax3 = ax2 * ax;
    if ax <= 1.0 {
        1.5 * ax3 - 2.5 * ax2 + 1.0
    } else if ax <= 2.0 {
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    } else {
        0.0
    }
}

/// Mirror a (possibly out-of-range) 0-based index into `0..len` the way
/// MATLAB's `aux = [1:len, len:-1:1]` lookup does.
fn mirror(index: i64, len: usize) -> usize {
    let period = 2 * len as i64;
    let m = index.rem_euclid(period) as usize;
    if m < len {
        m
    } else {
        2 * len - 1 - m
    }
}

/// MATLAB's `contributions()` for a bicubic resize of `in_len` samples to
/// `out_len` by `scale`.
fn contributions(in_len: usize, out_len: usize, scale: f64) -> Contributions {
    let antialias = scale < 1.0;
    let kernel_width = if antialias { 4.0 / scale } else { 4.0 };
    let taps = kernel_width.ceil() as usize + 2;
    let mut weights = Vec::with_capacity(out_len * taps);
    let mut indices = Vec::with_capacity(out_len * taps);
    let mut row = vec![0.0f64; taps];
    for i in 0..out_len {
        // 1-based output coordinate mapped to 1-based input coordinate.
        let x = (i + 1) as f64;
        let u = x / scale + 0.5 * (1.0 - 1.0 / scale);
        let left = (u - kernel_width / 2.0).floor() as i64;
        for (k, w) in row.iter_mut().enumerate() {
            let distance = u - (left + k as i64) as f64;
            *w = if antialias {
                scale * cubic(scale * distance)
            } else {
                cubic(distance)
            };
        }
        let sum: f64 = row.iter().sum();
        for (k, w) in row.iter().enumerate() {
            weights.push((w / sum) as f32);
            // `left + k` is 1-based; mirror the 0-based index.
            indices.push(mirror(left + k as i64 - 1, in_len));
        }
    }
    Contributions {
        taps,
        weights,
        indices,
    }
}

/// `ceil(scale * len)` as MATLAB sizes its output, tolerant of the rounding
/// error in `1/s * len` so that a multiple of `s` shrinks exactly.
fn output_len(len: usize, scale: f64) -> usize {
    let exact = scale * len as f64;
    let rounded = exact.round();
    if (exact - rounded).abs() < 1e-9 {
        rounded as usize
    } else {
        exact.ceil() as usize
    }
}

fn check_scale_factor(scale: f64) -> Result<(), DataError> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(DataError::invalid(
            "resize scale",
            scale,
            "must be a finite number > 0",
        ))
    }
}

/// An integer scale factor: at least 1.
pub(super) fn check_scale(scale: usize) -> Result<(), DataError> {
    if scale >= 1 {
        Ok(())
    } else {
        Err(DataError::invalid(
            "scale",
            scale,
            "must be an integer >= 1",
        ))
    }
}

/// Bicubic resize by `scale` exactly as MATLAB's `imresize(img, scale)`
/// (`scale < 1` shrinks with antialiasing). The output is
/// `ceil(scale * H) x ceil(scale * W)`; samples are not rounded or clipped.
pub fn imresize(img: &RgbImage, scale: f64) -> Result<RgbImage, DataError> {
    check_scale_factor(scale)?;
    if img.height == 0 || img.width == 0 {
        return Err(DataError::invalid(
            "image size",
            format!("{}x{}", img.height, img.width),
            "resizing needs at least one row and one column",
        ));
    }
    let out_h = output_len(img.height, scale);
    let out_w = output_len(img.width, scale);
    if out_h == 0 || out_w == 0 {
        return Err(DataError::invalid(
            "resize scale",
            scale,
            "would produce an empty image",
        ));
    }
    let rows = contributions(img.height, out_h, scale);
    let cols = contributions(img.width, out_w, scale);
    let tall = resize_height(img, out_h, &rows);
    Ok(resize_width(&tall, out_w, &cols))
}

/// The height pass: each output row is a weighted sum of input rows.
fn resize_height(img: &RgbImage, out_h: usize, rows: &Contributions) -> RgbImage {
    let w = img.width;
    let mut out = RgbImage::filled(out_h, w, 0.0);
    for c in 0..3 {
        let src = img.plane(c);
        let dst = &mut out.data[c * out_h * w..(c + 1) * out_h * w];
        for (i, dst_row) in dst.chunks_exact_mut(w).enumerate() {
            let taps = i * rows.taps..(i + 1) * rows.taps;
            for (&weight, &index) in rows.weights[taps.clone()].iter().zip(&rows.indices[taps]) {
                if weight == 0.0 {
                    continue;
                }
                let src_row = &src[index * w..(index + 1) * w];
                for (d, s) in dst_row.iter_mut().zip(src_row) {
                    *d += weight * s;
                }
            }
        }
    }
    out
}

/// The width pass: each output column is a weighted sum of input columns.
fn resize_width(img: &RgbImage, out_w: usize, cols: &Contributions) -> RgbImage {
    let (h, w) = (img.height, img.width);
    let mut out = RgbImage::filled(h, out_w, 0.0);
    for (src_row, dst_row) in img
        .data
        .chunks_exact(w)
        .zip(out.data.chunks_exact_mut(out_w))
    {
        for (j, d) in dst_row.iter_mut().enumerate() {
            let taps = j * cols.taps..(j + 1) * cols.taps;
            *d = cols.weights[taps.clone()]
                .iter()
                .zip(&cols.indices[taps])
                .map(|(&weight, &index)| weight * src_row[index])
                .sum();
        }
    }
    out
}

/// Crop the bottom rows and right columns so that height and width are
/// multiples of `scale` (the SR convention for HR images).
pub fn modcrop(img: &RgbImage, scale: usize) -> Result<RgbImage, DataError> {
    check_scale(scale)?;
    let h = img.height - img.height % scale;
    let w = img.width - img.width % scale;
    img.crop(0, 0, h, w)
}

/// The benchmark LR of an HR image: `round(clip(imresize(hr/255, 1/scale)*255))`,
/// i.e. MATLAB's bicubic downscale of the image as doubles in 0..1, stored as
/// 8-bit. `hr` is on the 0..255 scale; modcrop it first to get exactly
/// `H/scale x W/scale` (otherwise the size is rounded up, like MATLAB).
pub fn downscale(hr: &RgbImage, scale: usize) -> Result<RgbImage, DataError> {
    check_scale(scale)?;
    let small = imresize(&hr.scaled(1.0 / 255.0), 1.0 / scale as f64)?;
    Ok(small.scaled(255.0).quantized())
}

/// Version of [`downscale`]'s arithmetic: part of the decoded cache's key
/// ([`super::cache`]), so that LR images made by an older downscaler are
/// made again. Raise it whenever `downscale` may give other values.
pub const DOWNSCALER_VERSION: u32 = 1;

/// The bicubic baseline: MATLAB's `imresize(lr, scale)` on an 8-bit image,
/// which returns 8-bit samples (rounded and clipped).
pub fn upscale_bicubic(lr: &RgbImage, scale: usize) -> Result<RgbImage, DataError> {
    check_scale(scale)?;
    Ok(imresize(lr, scale as f64)?.quantized())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_symmetric_padding() {
        let got: Vec<usize> = (-3..7).map(|i| mirror(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(mirror(-1, 1), 0);
        assert_eq!(mirror(5, 1), 0);
    }

    #[test]
    fn weights_sum_to_one_and_shrink_widens_the_kernel() {
        for &(n, m, s) in &[(12, 6, 0.5), (12, 4, 1.0 / 3.0), (4, 8, 2.0), (5, 20, 4.0)] {
            let c = contributions(n, m, s);
            for i in 0..m {
                let sum: f32 = c.weights[i * c.taps..(i + 1) * c.taps].iter().sum();
                assert!((sum - 1.0).abs() < 1e-6);
            }
        }
        assert_eq!(contributions(12, 6, 0.5).taps, 10);
        assert_eq!(contributions(4, 8, 2.0).taps, 6);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::filled(9, 7, 42.0);
        for s in [0.5, 1.0 / 3.0, 2.0, 3.0] {
            let out = imresize(&img, s).unwrap();
            assert!(out.data.iter().all(|v| (v - 42.0).abs() < 1e-3));
        }
    }

    #[test]
    fn output_sizes_follow_matlab() {
        let img = RgbImage::filled(48, 60, 0.0);
        let out = imresize(&img, 1.0 / 3.0).unwrap();
        assert_eq!((out.height, out.width), (16, 20));
        let odd = RgbImage::filled(7, 5, 0.0);
        let out = imresize(&odd, 0.5).unwrap();
        assert_eq!((out.height, out.width), (4, 3));
        let out = imresize(&odd, 3.0).unwrap();
        assert_eq!((out.height, out.width), (21, 15));
    }

    #[test]
    fn identity_scale_keeps_the_image() {
        let img = RgbImage::new(2, 3, (0..18).map(|v| v as f32 * 7.0).collect()).unwrap();
        let out = imresize(&img, 1.0).unwrap();
        for (a, b) in out.data.iter().zip(&img.data) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let img = RgbImage::filled(4, 4, 0.0);
        assert!(imresize(&img, 0.0).is_err());
        assert!(imresize(&img, f64::NAN).is_err());
        assert!(imresize(&RgbImage::filled(0, 4, 0.0), 2.0).is_err());
        assert!(modcrop(&img, 0).is_err());
        assert!(downscale(&img, 0).is_err());
    }

    #[test]
    fn modcrop_trims_bottom_and_right() {
        let img = RgbImage::new(5, 7, (0..105).map(|v| v as f32).collect()).unwrap();
        let out = modcrop(&img, 3).unwrap();
        assert_eq!((out.height, out.width), (3, 6));
        assert_eq!(out.get(0, 2, 5), img.get(0, 2, 5));
        assert_eq!(out.get(2, 1, 1), img.get(2, 1, 1));
    }
}
