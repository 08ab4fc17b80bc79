//! Tiled inference equals untiled inference: the overlap is the network's
//! receptive field (C blocks' pooling included), checked at x2/x3/x4 with S,
//! G and C blocks on odd sizes, with tiles much smaller than the image.

use candle_core::Device;
use esr_ea::data::image::RgbImage;
use esr_ea::model::infer::{image_to_tensor, tensor_to_image, upscale_image_tiled};
use esr_ea::model::tiled::{receptive_radius, TilePlan};
use esr_ea::model::Esrn;
use esr_ea::space::{Arch, GeneList};

fn arch(genes: &[&str], scale: usize) -> Arch {
    let genes: Vec<String> = genes.iter().map(|s| s.to_string()).collect();
    Arch {
        genes: GeneList::parse_args(&genes).unwrap(),
        g0: 8,
        scale,
        bias: true,
    }
}

/// Texture with detail at every scale, so any border effect shows.
fn textured(h: usize, w: usize) -> RgbImage {
    let mut data = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 37 + y * 91 + c * 53) % 255) as f32 * 0.6
                    + 60.0 * ((x as f32 * 0.21 + y as f32 * 0.13 + c as f32).sin() + 1.0);
                data.push(v.min(255.0));
            }
        }
    }
    RgbImage::new(h, w, data).unwrap()
}

fn untiled(model: &Esrn, lr: &RgbImage) -> RgbImage {
    let input = image_to_tensor(lr, &Device::Cpu).unwrap();
    tensor_to_image(&model.forward(&input).unwrap().clamp(0.0, 1.0).unwrap()).unwrap()
}

fn max_diff(a: &RgbImage, b: &RgbImage) -> f32 {
    assert_eq!((a.height, a.width), (b.height, b.width));
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tiled_output_equals_untiled_at_every_scale_and_block_kind() {
    for (genes, scale, (h, w)) in [
        (vec!["S_2_8_8", "G_2_8_16"], 2, (53, 41)),
        (vec!["C_2_8_8", "G_3_8_8"], 2, (51, 45)),
        (vec!["G_2_8_8", "C_1_8_16", "S_1_8_8"], 3, (47, 39)),
        (vec!["C_2_8_8", "S_2_8_16"], 4, (43, 49)),
    ] {
        let a = arch(&genes, scale);
        let model = Esrn::seeded(&a, 11, &Device::Cpu).unwrap().0;
        let lr = textured(h, w);
        let reference = untiled(&model, &lr);
        let plan = TilePlan::with_core(&a, 10);
        assert!(
            plan.tiles(h, w).len() >= 16,
            "{genes:?}: the image must be cut in many tiles"
        );
        let mut seen = 0;
        let tiled =
            upscale_image_tiled(&model, &lr, &Device::Cpu, &plan, |done, _| seen = done).unwrap();
        assert_eq!(seen, plan.tiles(h, w).len());
        let d = max_diff(&tiled, &reference);
        eprintln!(
            "{genes:?} x{scale} {h}x{w}, {} tiles: max |tiled - untiled| = {d:e} (of 255)",
            plan.tiles(h, w).len()
        );
        assert!(
            d < 2e-3,
            "{genes:?} x{scale}: tiled differs by {d} (of 255)"
        );

        // The margin is what makes them equal: without it the seams show.
        let seamy = TilePlan { margin: 0, ..plan };
        let bad = upscale_image_tiled(&model, &lr, &Device::Cpu, &seamy, |_, _| {}).unwrap();
        assert!(
            max_diff(&bad, &reference) > 0.05,
            "{genes:?}: test cannot tell"
        );
    }
}

#[test]
fn the_receptive_field_counts_c_blocks_pooling() {
    // 2 (shallow) + 1 (GFF) + 2 (x2 upsampler) + per block.
    assert_eq!(receptive_radius(&arch(&["S_4_8_8"], 2)), 5 + 4);
    assert_eq!(receptive_radius(&arch(&["G_4_8_8"], 2)), 5 + 4);
    assert_eq!(receptive_radius(&arch(&["C_4_8_8"], 2)), 5 + 25);
    assert_eq!(receptive_radius(&arch(&["C_4_8_8"], 4)), 6 + 25);
}
