//! Any input size works: odd sizes are padded by replication and the output
//! cropped to exactly `scale ×` the input, without damaging the borders.

use candle_core::{Device, Tensor, D};
use esr_ea::model::Esrn;
use esr_ea::space::{Arch, GeneList};

fn model(genes: &str, scale: usize) -> Esrn {
    let arch = Arch {
        genes: GeneList::parse_args(&[genes]).unwrap(),
        g0: 8,
        scale,
        bias: true,
    };
    Esrn::seeded(&arch, 3, &Device::Cpu).unwrap().0
}

/// A smooth test image: gentle ramps and a low-frequency wave per channel.
fn smooth_image(h: usize, w: usize) -> Tensor {
    let mut v = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let t = 0.3 + 0.02 * y as f32 + 0.015 * x as f32 + 0.1 * c as f32;
                v.push(t + 0.05 * ((x + 2 * y) as f32 * 0.3).sin());
            }
        }
    }
    Tensor::from_vec(v, (1, 3, h, w), &Device::Cpu).unwrap()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn odd_input_equals_padded_computation_cropped() {
    for scale in [2, 3, 4] {
        let net = model("S_4_8_8 C_4_8_16", scale);
        assert_eq!(net.size_multiple(), 2);
        let lr = smooth_image(7, 9);
        let out = net.forward(&lr).unwrap();
        assert_eq!(out.dims(), &[1, 3, 7 * scale, 9 * scale]);
        let padded = lr
            .pad_with_same(2, 0, 1)
            .unwrap()
            .pad_with_same(3, 0, 1)
            .unwrap();
        let manual = net
            .forward_unpadded(&padded)
            .unwrap()
            .narrow(2, 0, 7 * scale)
            .unwrap()
            .narrow(3, 0, 9 * scale)
            .unwrap();
        assert_eq!(max_abs(&(out - manual).unwrap()), 0.0);
    }
}

#[test]
fn unpadded_forward_explains_odd_sizes() {
    let net = model("C_4_8_16", 2);
    let err = net
        .forward_unpadded(&smooth_image(7, 8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("7x8 is not a multiple of 2"), "{err}");
    let err = net
        .forward(&Tensor::zeros((1, 4, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[batch, 3, height, width]"), "{err}");
}

#[test]
fn networks_without_c_blocks_need_no_padding() {
    let net = model("S_4_8_8 G_4_8_8", 3);
    assert_eq!(net.size_multiple(), 1);
    let out = net.forward(&smooth_image(5, 7)).unwrap();
    assert_eq!(out.dims(), &[1, 3, 15, 21]);
}

/// Cropping a smooth image to odd size and super-resolving it must give
/// nearly what the full image gives on the shared area: the replicated
/// row/column stands in for the real one, so the borders are no worse than
/// the interior.
#[test]
fn odd_crop_borders_match_the_full_image() {
    let net = model("S_4_8_8 C_4_8_16 G_4_8_8", 2);
    let full_lr = smooth_image(12, 14);
    let crop_lr = full_lr.narrow(2, 0, 11).unwrap().narrow(3, 0, 13).unwrap();
    let full = net.forward(&full_lr).unwrap();
    let crop = net.forward(&crop_lr).unwrap();
    assert_eq!(crop.dims(), &[1, 3, 22, 26]);
    let values: Vec<f32> = crop.flatten_all().unwrap().to_vec1().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    let shared = full.narrow(2, 0, 22).unwrap().narrow(3, 0, 26).unwrap();
    let diff = (&crop - &shared).unwrap().abs().unwrap();
    // The signal: how much the output varies over the image.
    let spread = {
        let flat = shared.flatten_all().unwrap();
        let max: f32 = flat.max(0).unwrap().to_scalar().unwrap();
        let min: f32 = flat.min(0).unwrap().to_scalar().unwrap();
        max - min
    };
    let bottom_row = max_abs(&diff.narrow(2, 21, 1).unwrap());
    let right_col = max_abs(&diff.narrow(D::Minus1, 25, 1).unwrap());
    eprintln!("border error {bottom_row}/{right_col}, output spread {spread}");
    assert!(
        bottom_row < 0.1 * spread && right_col < 0.1 * spread,
        "border error {bottom_row}/{right_col} vs output spread {spread}"
    );
}
