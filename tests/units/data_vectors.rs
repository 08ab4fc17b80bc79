//! MATLAB bicubic resize and Y-PSNR/SSIM against the reference vectors in
//! `tests/data/vectors/resize_metrics.json` (spec §8).

use esr_ea::data::{downscale, imresize, load_rgb, upscale_bicubic, RgbImage};
use esr_ea::metrics::{psnr_y, ssim_y};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors");

fn vector_image(name: &str) -> RgbImage {
    load_rgb(format!("{VECTORS}/{name}")).expect("reference PNG in tests/data/vectors")
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{VECTORS}/resize_metrics.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json["cases"].as_array().unwrap().clone()
}

/// Largest absolute difference, and how many samples differ at all.
fn compare(got: &RgbImage, want: &RgbImage) -> (f32, usize) {
    assert_eq!((got.height, got.width), (want.height, want.width));
    let max = got
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let differing = got
        .data
        .iter()
        .zip(&want.data)
        .filter(|(a, b)| a != b)
        .count();
    (max, differing)
}

#[test]
fn downscale_matches_matlab_within_one_grey_level() {
    let hr = vector_image("coffee_hr_48x60.png");
    assert_eq!((hr.height, hr.width), (48, 60));
    for case in cases() {
        let s = case["scale"].as_u64().unwrap() as usize;
        let want = vector_image(case["lr"].as_str().unwrap());
        let hw = &case["lr_size_hw"];
        assert_eq!(want.height as u64, hw[0].as_u64().unwrap());
        assert_eq!(want.width as u64, hw[1].as_u64().unwrap());
        let got = downscale(&hr, s).unwrap();
        let (max, differing) = compare(&got, &want);
        assert!(max <= 1.0, "x{s}: max difference {max}");
        // Nearly all samples must be exact; only float rounding may differ.
        assert!(
            differing * 100 <= got.data.len(),
            "x{s}: {differing} of {} samples differ",
            got.data.len()
        );
    }
}

#[test]
fn bicubic_upscale_matches_matlab_within_one_grey_level() {
    for case in cases() {
        let s = case["scale"].as_u64().unwrap() as usize;
        let lr = vector_image(case["lr"].as_str().unwrap());
        let want = vector_image(case["bicubic_up"].as_str().unwrap());
        let got = upscale_bicubic(&lr, s).unwrap();
        let (max, differing) = compare(&got, &want);
        assert!(max <= 1.0, "x{s}: max difference {max}");
        assert!(
            differing * 100 <= got.data.len(),
            "x{s}: {differing} of {} samples differ",
            got.data.len()
        );
    }
}

#[test]
fn unrounded_upscale_has_the_lr_size_times_scale() {
    let lr = vector_image("coffee_lr_x3.png");
    let up = imresize(&lr, 3.0).unwrap();
    assert_eq!((up.height, up.width), (48, 60));
}

#[test]
fn psnr_and_ssim_match_the_reference() {
    let hr = vector_image("coffee_hr_48x60.png");
    for case in cases() {
        let s = case["scale"].as_u64().unwrap() as usize;
        let up = vector_image(case["bicubic_up"].as_str().unwrap());
        let psnr = psnr_y(&up, &hr, s).unwrap();
        let ssim = ssim_y(&up, &hr, s).unwrap();
        let want_psnr = case["psnr_y_shave_scale_hr_vs_bicubic_up"]
            .as_f64()
            .unwrap();
        let want_ssim = case["ssim_y_shave_scale_hr_vs_bicubic_up"]
            .as_f64()
            .unwrap();
        assert!(
            (psnr - want_psnr).abs() <= 0.01,
            "x{s}: PSNR {psnr} vs {want_psnr}"
        );
        assert!(
            (ssim - want_ssim).abs() <= 0.0005,
            "x{s}: SSIM {ssim} vs {want_ssim}"
        );
    }
}
