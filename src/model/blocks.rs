//! The three efficient residual dense blocks (spec §4): S (shrink), G (group)
//! and C (contextual), with the reference's tensor names.
//!
//! Ops used: S — 3x3 conv, ReLU, concat, 1x1 conv; G — channel shuffle,
//! grouped 3x3 conv, ReLU, concat, 1x1 conv; C — 2x2 average pooling, 3x3
//! conv reused three times, ReLU, concat, 1x1 conv, pixel shuffle by 2.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv::{Conv, ConvKind};
use super::ops;
use crate::ops::{BlockEnds, DenseLayer, Residual};
use crate::space::cost::group_conv_groups;
use crate::space::{BlockGene, BlockKind};

/// The block-kind specific part between the input projection and the residual.
#[derive(Debug, Clone)]
enum Body {
    /// `Convs.<j>.0` (3x3 G→G) and `ShrinkConv.<j>` (1x1 (2+j)·G → G, last → O).
    Shrink {
        convs: Vec<Conv>,
        shrinks: Vec<Conv>,
    },
    /// `convs.<c>.conv.0` (grouped 3x3 (c+1)·G → G) and `LFF` (1x1 (C+1)·G → O).
    Group { convs: Vec<Conv>, lff: Conv },
    /// `Convs.<j>.0` (3x3 G→G at half size, run three times) and
    /// `ShrinkConv.<j>`: 1x1 (2+j)·G → G for j < C-1, and the last one,
    /// `ShrinkConv.<C-1>`, 1x1 (C+1)·G/4 → O after the pixel shuffle.
    Contextual {
        convs: Vec<Conv>,
        shrinks: Vec<Conv>,
    },
}

/// One efficient residual dense block.
#[derive(Debug, Clone)]
pub struct Block {
    gene: BlockGene,
    in_ch: usize,
    /// `InConv`, 1x1 I→G, present when I ≠ G.
    in_conv: Option<Conv>,
    /// `OutConv`, 1x1 I→O, present when O ≠ I and O ≠ G.
    out_conv: Option<Conv>,
    body: Body,
}

impl Block {
    /// Builds block `gene` with `in_ch` input channels under `vb`'s prefix
    /// (the caller passes `ERDBLayer.ERBD.<i>`).
    pub fn new(gene: &BlockGene, in_ch: usize, bias: bool, vb: VarBuilder) -> Result<Block> {
        let BlockGene {
            kind,
            convs: c_num,
            growth: g,
            out: o,
        } = *gene;
        let conv = |vb: VarBuilder, kind, i, o| Conv::new(vb, kind, i, o, bias);
        let in_conv = if in_ch != g {
            Some(conv(vb.pp("InConv"), ConvKind::Conv1x1, in_ch, g)?)
        } else {
            None
        };
        let out_conv = if o != in_ch && o != g {
            Some(conv(vb.pp("OutConv"), ConvKind::Conv1x1, in_ch, o)?)
        } else {
            None
        };
        let body = match kind {
            BlockKind::S => {
                let mut convs = Vec::with_capacity(c_num);
                let mut shrinks = Vec::with_capacity(c_num);
                for j in 0..c_num {
                    convs.push(conv(vb.pp("Convs").pp(j).pp(0), ConvKind::Conv3x3, g, g)?);
                    let shrink_out = if j + 1 == c_num { o } else { g };
                    shrinks.push(conv(
                        vb.pp("ShrinkConv").pp(j),
                        ConvKind::Conv1x1,
                        (2 + j) * g,
                        shrink_out,
                    )?);
                }
                Body::Shrink { convs, shrinks }
            }
            BlockKind::G => {
                let mut convs = Vec::with_capacity(c_num);
                for c in 0..c_num {
                    convs.push(conv(
                        vb.pp("convs").pp(c).pp("conv").pp(0),
                        ConvKind::Grouped3x3 {
                            groups: group_conv_groups(c),
                        },
                        (c + 1) * g,
                        g,
                    )?);
                }
                let lff = conv(vb.pp("LFF"), ConvKind::Conv1x1, (c_num + 1) * g, o)?;
                Body::Group { convs, lff }
            }
            BlockKind::C => {
                let mut convs = Vec::with_capacity(c_num);
                let mut shrinks = Vec::with_capacity(c_num);
                for j in 0..c_num {
                    convs.push(conv(vb.pp("Convs").pp(j).pp(0), ConvKind::Conv3x3, g, g)?);
                    let (s_in, s_out) = if j + 1 < c_num {
                        ((2 + j) * g, g)
                    } else {
                        ((c_num + 1) * g / 4, o)
                    };
                    shrinks.push(conv(
                        vb.pp("ShrinkConv").pp(j),
                        ConvKind::Conv1x1,
                        s_in,
                        s_out,
                    )?);
                }
                Body::Contextual { convs, shrinks }
            }
        };
        Ok(Block {
            gene: *gene,
            in_ch,
            in_conv,
            out_conv,
            body,
        })
    }

    /// The block's gene.
    pub fn gene(&self) -> &BlockGene {
        &self.gene
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_ch
    }

    /// Runs the block on `[B, I, H, W]`, giving `[B, O, H, W]`. C blocks need
    /// even H and W ([`super::Esrn::forward`] pads for that).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // G and S blocks are one op from input to output on the CPU. G:
        // layer c reads the running concatenation shuffled by c+1 groups,
        // which keeps its original channel order (reference `RDB_Conv`),
        // then LFF and the residual. S: cur_0 = xi; t_j = relu(conv_j(cur_j))
        // joins the running concatenation and cur_{j+1} =
        // shrink_j(concatenation); the last shrink reads it all.
        let ends = self.ends()?;
        match &self.body {
            Body::Group { convs, lff } => {
                let layers: Vec<DenseLayer> = convs.iter().map(dense_layer).collect();
                crate::ops::dense_group_block(x, ends, &layers, dense_layer(lff))
            }
            Body::Shrink { convs, shrinks } => {
                let Some((last, inner)) = shrinks.split_last() else {
                    candle_core::bail!("shrink block without convolutions");
                };
                let convs: Vec<DenseLayer> = convs.iter().map(dense_layer).collect();
                let inner: Vec<DenseLayer> = inner.iter().map(dense_layer).collect();
                crate::ops::dense_shrink_block(x, ends, &convs, &inner, dense_layer(last))
            }
            Body::Contextual { convs, shrinks } => {
                let xi = ends.project(x)?;
                let body = contextual_body(&xi, convs, shrinks)?;
                ends.output(x, &xi, &body)
            }
        }
    }

    /// `InConv` and the residual, as the fused block ops take them: the
    /// residual exactly as the reference's (identity when the width is
    /// kept, else the projected input when the block ends at its growth
    /// width, else a separate 1x1 projection of the raw input).
    fn ends(&self) -> Result<BlockEnds<'_>> {
        let residual = if self.gene.out == self.in_ch {
            Residual::Input
        } else if self.gene.out == self.gene.growth {
            Residual::Projected
        } else {
            match &self.out_conv {
                Some(c) => Residual::Conv(dense_layer(c)),
                None => candle_core::bail!("block {}: missing OutConv", self.gene),
            }
        };
        Ok(BlockEnds {
            in_conv: self.in_conv.as_ref().map(dense_layer),
            residual,
        })
    }

    /// Every convolution of the block, in construction order.
    pub fn convs(&self) -> Vec<&Conv> {
        let mut all: Vec<&Conv> = self.in_conv.iter().collect();
        match &self.body {
            Body::Shrink { convs, shrinks } | Body::Contextual { convs, shrinks } => {
                for (c, s) in convs.iter().zip(shrinks) {
                    all.push(c);
                    all.push(s);
                }
            }
            Body::Group { convs, lff } => {
                all.extend(convs.iter());
                all.push(lff);
            }
        }
        all.extend(self.out_conv.iter());
        all
    }
}

/// A layer as the dense-block ops take it.
fn dense_layer(c: &Conv) -> DenseLayer<'_> {
    DenseLayer {
        weight: c.weight(),
        bias: c.bias(),
        groups: c.groups(),
    }
}

fn contextual_body(xi: &Tensor, convs: &[Conv], shrinks: &[Conv]) -> Result<Tensor> {
    // The "recursive" part: each conv applied three times with shared
    // weights; its output joins the running concatenation, whose shrink
    // feeds the next conv; the last shrink reads the concatenation after a
    // pixel shuffle by 2. On the CPU the dense part is one op writing into
    // one buffer.
    let Some((last, inner)) = shrinks.split_last() else {
        candle_core::bail!("contextual block without convolutions");
    };
    let convs: Vec<DenseLayer> = convs.iter().map(dense_layer).collect();
    let inner: Vec<DenseLayer> = inner.iter().map(dense_layer).collect();
    let pooled = ops::avg_pool2x2(xi)?;
    let features = crate::ops::dense_shrink_features(&pooled, &convs, &inner, 3)?;
    last.forward(&ops::pixel_shuffle(&features, 2)?)
}
