//! How much memory a training step needs: the estimate `search --check`
//! compares with the machine, and `speed` prints beside its measured peak.
//!
//! A training step keeps every tensor the forward makes until the backward
//! has used it (candle records the graph), so the step's peak grows with
//! the sum of all layers' outputs, not with the widest one as an inference
//! does (see [`super::tiled::bytes_per_pixel`]). The count below follows
//! the forward of [`super::Esrn`] tensor by tensor; [`TRAINING_FACTOR`]
//! covers the gradients alive during the backward and the allocator, and
//! comes from measured peaks (`esr-ea speed`, see the issue-25 note).

use crate::space::{Arch, BlockKind};

/// Measured peak over the counted activations: `esr-ea speed` on toy and
/// paper-size networks at x2/x3/x4 peaked at 0.58-0.88 of the estimate with
/// this factor (gradients of the block being differentiated, the loss's
/// temporaries and the allocator's reuse pool on top of the activations).
const TRAINING_FACTOR: f64 = 2.0;

/// Bytes of the optimiser's state per parameter: the weight, its gradient
/// and Adam's two moments, in f32.
const BYTES_PER_PARAM: u64 = 16;

/// Estimated peak bytes per LR pixel of one sample in a training step.
pub fn training_bytes_per_pixel(arch: &Arch) -> usize {
    let g0 = arch.g0 as f64;
    let s2 = (arch.scale * arch.scale) as f64;
    // The LR input, SFENet1 and SFENet2.
    let mut channels = 3.0 + 2.0 * g0;
    let mut in_ch = arch.g0;
    for gene in arch.genes.iter() {
        let (c, g, o) = (gene.convs as f64, gene.growth as f64, gene.out as f64);
        let mut block = 0.0;
        if in_ch != gene.growth {
            block += g; // InConv
        }
        if gene.out != in_ch && gene.out != gene.growth {
            block += o; // OutConv
        }
        block += match gene.kind {
            // The dense buffer (input + c layers), the inner shrinks, the last one.
            BlockKind::S => (c + 1.0) * g + (c - 1.0) * g + o,
            // The dense buffer and the local fusion.
            BlockKind::G => (c + 1.0) * g + o,
            // At a quarter of the pixels: the pooled input, three outputs per
            // conv, every concatenation (2..c+1 growths), the inner shrinks,
            // the shuffled last concatenation; then the last shrink.
            BlockKind::C => {
                let concatenations = (c * (c + 3.0)) / 2.0;
                g / 4.0 * (1.0 + 3.0 * c + concatenations + (c - 1.0) + (c + 1.0)) + o
            }
        };
        // The residual sum.
        channels += block + o;
        in_ch = gene.out;
    }
    // The global fusion: the concatenation of every block's output, the 1x1,
    // the 3x3 and the residual sum.
    let concat: usize = arch.genes.iter().map(|g| g.out).sum();
    channels += concat as f64 + 3.0 * g0;
    // The upsampler, per LR pixel (a shuffle keeps the bytes; x4's second
    // conv runs at twice the resolution): convs, shuffles, the output.
    channels += match arch.scale {
        2 => 6.0 * g0,
        3 => 13.5 * g0,
        _ => 40.0 * g0,
    } + 3.0 * s2;
    // The HR target and the loss's difference and magnitude, at HR pixels.
    channels += 3.0 * 3.0 * s2;
    (4.0 * channels * TRAINING_FACTOR).ceil() as usize
}

/// Estimated peak bytes of a training step at `batch` LR patches of
/// `crop x crop` pixels: the activations plus the weights, their gradients
/// and Adam's moments.
pub fn training_step_bytes(arch: &Arch, batch: usize, crop: usize) -> u64 {
    let pixels = (batch * crop * crop) as u64;
    pixels * training_bytes_per_pixel(arch) as u64 + arch.params() * BYTES_PER_PARAM
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::GeneList;

    fn arch(genes: &str) -> Arch {
        Arch {
            genes: GeneList::parse_args(&[genes]).unwrap(),
            g0: 32,
            scale: 2,
            bias: true,
        }
    }

    #[test]
    fn grows_with_depth_batch_and_crop() {
        let one = arch("S_4_16_32");
        let two = arch("S_4_16_32 S_4_16_32");
        assert!(training_bytes_per_pixel(&two) > training_bytes_per_pixel(&one));
        let base = training_step_bytes(&one, 16, 32);
        assert!(training_step_bytes(&one, 32, 32) > base);
        assert!(training_step_bytes(&one, 16, 64) > 3 * base);
    }

    #[test]
    fn a_larger_scale_needs_more() {
        let mut a = arch("G_8_32_32 C_8_32_32");
        let x2 = training_bytes_per_pixel(&a);
        a.scale = 4;
        assert!(training_bytes_per_pixel(&a) > x2);
    }
}
