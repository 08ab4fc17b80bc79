//! The whole network (spec §4): shallow features, the block chain, global
//! fusion and the pixel-shuffle upsampler.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::blocks::Block;
use super::conv::{Conv, ConvKind};
use super::init;
use super::ops;
use crate::space::{Arch, BlockKind};

/// One step of the upsampler (`UPNet.<i>`): a 3x3 conv or a pixel shuffle.
#[derive(Debug, Clone)]
enum UpStep {
    Conv(Conv),
    Shuffle(usize),
}

/// An ESRN super-resolution network built from an [`Arch`].
///
/// Tensor names follow the reference (spec §8), so its checkpoints load as
/// they are: `SFENet1`, `ERDBLayer.SFENet2`, `ERDBLayer.ERBD.<i>.…`,
/// `ERDBLayer.GFF.{0,1}`, `UPNet.<i>`.
#[derive(Debug, Clone)]
pub struct Esrn {
    arch: Arch,
    sfe1: Conv,
    sfe2: Conv,
    blocks: Vec<Block>,
    gff_fuse: Conv,
    gff_conv: Conv,
    up: Vec<UpStep>,
}

/// Checks the global settings the network needs: scale 2, 3 or 4, G0 a
/// positive multiple of 4 (the upsamplers shuffle 3·G0/4 or G0 channels) and
/// at least one block.
pub fn check_arch(arch: &Arch) -> Result<()> {
    if !matches!(arch.scale, 2..=4) {
        bail!("scale {} is not supported (allowed: 2, 3, 4)", arch.scale);
    }
    if arch.g0 > crate::space::gene::MAX_CHANNELS {
        bail!(
            "G0 = {} is not allowed: at most {} channels",
            arch.g0,
            crate::space::gene::MAX_CHANNELS
        );
    }
    if arch.g0 == 0 || arch.g0 % 4 != 0 {
        bail!(
            "G0 = {} is not allowed: it must be a positive multiple of 4",
            arch.g0
        );
    }
    if arch.genes.is_empty() {
        bail!("the network needs at least one block gene (example: G_8_16_24)");
    }
    Ok(())
}

impl Esrn {
    /// Builds the network. With a [`VarBuilder`] over a [`VarMap`] this creates
    /// fresh trainable weights (PyTorch's default init); over loaded tensors it
    /// fetches them by name and checks their shapes.
    pub fn new(arch: &Arch, vb: VarBuilder) -> Result<Esrn> {
        check_arch(arch)?;
        let g0 = arch.g0;
        let bias = arch.bias;
        let conv = |vb: VarBuilder, kind, i, o| Conv::new(vb, kind, i, o, bias);
        let body = vb.pp("ERDBLayer");
        let sfe1 = conv(vb.pp("SFENet1"), ConvKind::Conv3x3, 3, g0)?;
        let sfe2 = conv(body.pp("SFENet2"), ConvKind::Conv3x3, g0, g0)?;
        let mut blocks = Vec::with_capacity(arch.genes.len());
        let mut in_ch = g0;
        for (i, gene) in arch.genes.iter().enumerate() {
            blocks.push(Block::new(gene, in_ch, bias, body.pp("ERBD").pp(i))?);
            in_ch = gene.out;
        }
        let concat: usize = arch.genes.iter().map(|g| g.out).sum();
        let gff_fuse = conv(body.pp("GFF").pp(0), ConvKind::Conv1x1, concat, g0)?;
        let gff_conv = conv(body.pp("GFF").pp(1), ConvKind::Conv3x3, g0, g0)?;
        let up_vb = vb.pp("UPNet");
        let up_conv = |i: usize, c_in, c_out| -> Result<UpStep> {
            Ok(UpStep::Conv(conv(
                up_vb.pp(i),
                ConvKind::Conv3x3,
                c_in,
                c_out,
            )?))
        };
        let up = match arch.scale {
            2 => vec![
                up_conv(0, g0, 3 * g0)?,
                UpStep::Shuffle(2),
                up_conv(2, 3 * g0 / 4, 3)?,
            ],
            // The reference's x3 upsampler cannot run (3·G0 channels do not
            // shuffle by 3); ours keeps 3·G0/4 channels after the shuffle.
            3 => vec![
                up_conv(0, g0, 27 * g0 / 4)?,
                UpStep::Shuffle(3),
                up_conv(2, 3 * g0 / 4, 3)?,
            ],
            _ => vec![
                up_conv(0, g0, 4 * g0)?,
                UpStep::Shuffle(2),
                up_conv(2, g0, 4 * g0)?,
                UpStep::Shuffle(2),
                up_conv(4, g0, 3)?,
            ],
        };
        Ok(Esrn {
            arch: arch.clone(),
            sfe1,
            sfe2,
            blocks,
            gff_fuse,
            gff_conv,
            up,
        })
    }

    /// Builds the network with fresh f32 weights drawn from a seeded generator
    /// (PyTorch's default init, U(±1/√fan_in)), identical on every device.
    pub fn seeded(arch: &Arch, seed: u64, device: &Device) -> Result<(Esrn, VarMap)> {
        let varmap = VarMap::new();
        let model = Esrn::new(arch, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        init::reset_parameters(&model, &varmap, seed)?;
        Ok((model, varmap))
    }

    /// The architecture this network was built from.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// Height and width the body needs to be a multiple of: 2 when the
    /// network has a C block (it pools 2x2), else 1.
    pub fn size_multiple(&self) -> usize {
        if self.arch.genes.iter().any(|g| g.kind == BlockKind::C) {
            2
        } else {
            1
        }
    }

    /// Super-resolves `[B, 3, H, W]` (values in 0..1) to `[B, 3, s·H, s·W]`,
    /// for any H and W. When a C block needs even sizes and H or W is odd, the
    /// input is padded by replicating its last row/column, and the output is
    /// cropped back to exactly `s·H × s·W`.
    pub fn forward(&self, lr: &Tensor) -> Result<Tensor> {
        let (h, w) = check_input(lr)?;
        let m = self.size_multiple();
        let (pad_h, pad_w) = ((m - h % m) % m, (m - w % m) % m);
        if pad_h == 0 && pad_w == 0 {
            return self.forward_unpadded(lr);
        }
        let padded = lr.pad_with_same(2, 0, pad_h)?.pad_with_same(3, 0, pad_w)?;
        let s = self.arch.scale;
        self.forward_unpadded(&padded)?
            .narrow(2, 0, s * h)?
            .narrow(3, 0, s * w)
    }

    /// The network as defined, without padding: H and W must be multiples of
    /// [`Esrn::size_multiple`]. Training patches are; use [`Esrn::forward`]
    /// for arbitrary images.
    pub fn forward_unpadded(&self, lr: &Tensor) -> Result<Tensor> {
        let (h, w) = check_input(lr)?;
        let m = self.size_multiple();
        if h % m != 0 || w % m != 0 {
            bail!("input {h}x{w} is not a multiple of {m} (this network has C blocks); use Esrn::forward, which pads");
        }
        let x0 = self.sfe1.forward(lr)?;
        let mut x = self.sfe2.forward(&x0)?;
        // The global fusion's 1x1 conv over the concatenation of the block
        // outputs is the sum of its slices' convs over each block's output:
        // on the CPU each block's share is added as soon as the block is
        // done, and the concatenation is never built (in place and
        // without the block outputs kept for inference, see
        // `crate::ops::add_conv1x1`; as a new sum with gradients in
        // training, `crate::ops::accumulate_conv1x1`). Other devices train
        // through the concatenation: one convolution, not one per block.
        let training = self.records_gradients(lr);
        let fused = if training && !lr.device().is_cpu() {
            let mut kept = Vec::with_capacity(self.blocks.len());
            for block in &self.blocks {
                x = block.forward(&x)?;
                kept.push(x.clone());
            }
            self.gff_fuse.forward(&Tensor::cat(&kept, 1)?)?
        } else {
            let mut fused: Option<Tensor> = None;
            let mut offset = 0;
            for block in &self.blocks {
                x = block.forward(&x)?;
                let width = x.dim(1)?;
                let slice = self.gff_fuse.weight().narrow(1, offset, width)?;
                fused = Some(match fused {
                    None => ops::conv1x1(&x, &slice.contiguous()?, self.gff_fuse.bias())?,
                    Some(acc) if training => crate::ops::accumulate_conv1x1(&acc, &x, &slice)?,
                    Some(acc) => crate::ops::add_conv1x1(acc, &x, &slice)?,
                });
                offset += width;
            }
            match fused {
                Some(f) => f,
                None => bail!("the network needs at least one block"),
            }
        };
        let mut y = (self.gff_conv.forward(&fused)? + x0)?;
        for step in &self.up {
            y = match step {
                UpStep::Conv(c) => c.forward(&y)?,
                UpStep::Shuffle(r) => ops::pixel_shuffle(&y, *r)?,
            };
        }
        Ok(y)
    }

    /// Whether a forward on `lr` records a gradient graph (the input or
    /// any weight is a variable); without one the forward may take
    /// inference-only shortcuts.
    fn records_gradients(&self, lr: &Tensor) -> bool {
        lr.track_op() || self.convs().iter().any(|c| c.weight().track_op())
    }

    /// The blocks, in order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Every convolution of the network, in construction order.
    pub fn convs(&self) -> Vec<&Conv> {
        let mut all = vec![&self.sfe1, &self.sfe2];
        for b in &self.blocks {
            all.extend(b.convs());
        }
        all.push(&self.gff_fuse);
        all.push(&self.gff_conv);
        for step in &self.up {
            if let UpStep::Conv(c) = step {
                all.push(c);
            }
        }
        all
    }

    /// The same network over detached copies of its weights (same storage):
    /// nothing it computes records a gradient graph, as under PyTorch's
    /// `no_grad`, so each activation is freed once the next layer has read
    /// it. Trained weights are variables, and a forward pass through them
    /// keeps every activation alive until the output is dropped: measured on
    /// the seed network, twice the peak memory of an inference.
    pub fn inference_copy(&self) -> Result<Esrn> {
        let named = self.named_tensors();
        let device = named
            .first()
            .map_or(Device::Cpu, |(_, t)| t.device().clone());
        let plain = named.into_iter().map(|(n, t)| (n, t.detach())).collect();
        Esrn::new(
            &self.arch,
            VarBuilder::from_tensors(plain, DType::F32, &device),
        )
    }

    /// Every parameter tensor with its reference name, in construction order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for c in self.convs() {
            c.collect_tensors(&mut out);
        }
        out
    }

    /// Number of trainable values (equals `arch().cost().params`).
    pub fn num_params(&self) -> usize {
        self.named_tensors()
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum()
    }
}

/// Checks an LR batch is `[B, 3, H, W]` with non-zero sizes; returns (H, W).
fn check_input(lr: &Tensor) -> Result<(usize, usize)> {
    let dims = lr.dims();
    match *dims {
        [b, 3, h, w] if b > 0 && h > 0 && w > 0 => Ok((h, w)),
        _ => bail!(
            "the network input must be [batch, 3, height, width] with non-zero sizes, got {dims:?}"
        ),
    }
}

impl candle_core::Module for Esrn {
    /// Same as [`Esrn::forward`] (any input size).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Esrn::forward(self, xs)
    }
}
