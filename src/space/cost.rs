//! The exact cost model of ESRN (spec §4–§5): parameters and Multi-Adds.
//!
//! Every convolution of the network is listed once, with the number of output
//! pixels it produces for a 1280x720 output image and how many times it runs
//! there. Totals are sums over that list, so the per-block table of `inspect`
//! and the totals can never disagree.

use serde::{Deserialize, Serialize};

use super::gene::{BlockGene, BlockKind, GeneList};

/// Output size (width, height) the literature's "Multi-Adds (G)" figures are quoted for.
pub const MULTI_ADDS_OUTPUT: (u64, u64) = (1280, 720);

/// Pixel counts at each resolution the network works at, for a nominal output
/// of `MULTI_ADDS_OUTPUT`. The LR size is rounded down (1280/3 → 426), and the
/// real output is `scale ×` that, as the reference counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    /// LR pixels (body and shallow features).
    pub lr: u64,
    /// Half-LR pixels (inner convs of C blocks).
    pub half: u64,
    /// Twice-LR pixels (the middle conv of the x4 upsampler).
    pub double: u64,
    /// Output pixels.
    pub hr: u64,
}

impl Resolution {
    /// The resolutions for an upscaling factor.
    pub fn for_scale(scale: usize) -> Resolution {
        let s = scale as u64;
        let (w, h) = (MULTI_ADDS_OUTPUT.0 / s, MULTI_ADDS_OUTPUT.1 / s);
        Resolution {
            lr: w * h,
            half: (w / 2) * (h / 2),
            double: 4 * w * h,
            hr: s * s * w * h,
        }
    }
}

/// A whole network: block genes plus the global settings that change its cost.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Arch {
    /// The used blocks, in order.
    pub genes: GeneList,
    /// Channels of the shallow features and of the global fusion (multiple of 4).
    pub g0: usize,
    /// Upscaling factor: 2, 3 or 4.
    pub scale: usize,
    /// Whether convolutions carry a bias (the reference 0.9.x network; 1.x has none).
    pub bias: bool,
}

/// One convolution of the network and where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvCost {
    /// Kernel size (1 or 3).
    pub kernel: usize,
    /// Input channels.
    pub in_ch: usize,
    /// Output channels.
    pub out_ch: usize,
    /// Convolution groups.
    pub groups: usize,
    /// Output pixels per run, for a 1280x720 network output.
    pub pixels: u64,
    /// How many times the conv runs per forward pass (3 for C-block inner convs).
    pub runs: u64,
    /// True for the 1x1 in/out projections of a block, which the reference's
    /// estimate leaves out for every block but the first.
    pub projection: bool,
}

impl ConvCost {
    /// Trainable values of this conv.
    pub fn params(&self, bias: bool) -> u64 {
        let weights = self.out_ch * (self.in_ch / self.groups) * self.kernel * self.kernel;
        (weights + if bias { self.out_ch } else { 0 }) as u64
    }

    /// Multiply-accumulates per forward pass at 720p output.
    pub fn multi_adds(&self) -> u64 {
        self.pixels
            * self.runs
            * (self.out_ch * (self.in_ch / self.groups) * self.kernel * self.kernel) as u64
    }
}

/// The cost of one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCost {
    /// The block's gene.
    pub gene: BlockGene,
    /// Input channels (previous block's output, or G0 for the first block).
    pub in_ch: usize,
    /// Output channels.
    pub out_ch: usize,
    /// Trainable values.
    pub params: u64,
    /// Multi-Adds at 720p output.
    pub multi_adds: u64,
    /// Its convolutions.
    pub convs: Vec<ConvCost>,
}

/// The full cost breakdown of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCost {
    /// Exact trainable values.
    pub params: u64,
    /// Exact Multi-Adds for a 1280x720 output.
    pub multi_adds: u64,
    /// Shallow features, fusion and upsampler together.
    pub stem_params: u64,
    /// Multi-Adds of shallow features, fusion and upsampler.
    pub stem_multi_adds: u64,
    /// Per-block costs, in order.
    pub blocks: Vec<BlockCost>,
}

/// The reference implementation's closed-form estimate (wrong; kept for comparison only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceEstimate {
    /// Its parameter estimate: no biases, no projections after the first block.
    pub params: u64,
    /// Its `flops` figure: twice its Multi-Adds, with the same omissions.
    pub flops: u64,
}

fn conv(kernel: usize, in_ch: usize, out_ch: usize, pixels: u64) -> ConvCost {
    ConvCost {
        kernel,
        in_ch,
        out_ch,
        groups: 1,
        pixels,
        runs: 1,
        projection: false,
    }
}

/// Groups of the c-th (0-based) dense conv of a G block.
pub fn group_conv_groups(c: usize) -> usize {
    let n = c + 1;
    let pow = 1usize << (usize::BITS - 1 - n.leading_zeros());
    pow.min(4)
}

/// Lists the convolutions of one block with input channels `in_ch`.
pub fn block_convs(gene: &BlockGene, in_ch: usize, res: Resolution) -> Vec<ConvCost> {
    let pixels = res.lr;
    let BlockGene {
        kind,
        convs: c_num,
        growth: g,
        out: o,
    } = *gene;
    let mut convs = Vec::new();
    if in_ch != g {
        convs.push(ConvCost {
            projection: true,
            ..conv(1, in_ch, g, pixels)
        });
    }
    match kind {
        BlockKind::S => {
            for i in 0..c_num {
                convs.push(conv(3, g, g, pixels));
                let shrink_out = if i + 1 == c_num { o } else { g };
                convs.push(conv(1, (2 + i) * g, shrink_out, pixels));
            }
        }
        BlockKind::G => {
            for c in 0..c_num {
                convs.push(ConvCost {
                    groups: group_conv_groups(c),
                    ..conv(3, (c + 1) * g, g, pixels)
                });
            }
            convs.push(conv(1, (c_num + 1) * g, o, pixels));
        }
        BlockKind::C => {
            let half = res.half;
            for i in 0..c_num {
                convs.push(ConvCost {
                    runs: 3,
                    ..conv(3, g, g, half)
                });
                if i + 1 < c_num {
                    convs.push(conv(1, (2 + i) * g, g, half));
                }
            }
            convs.push(conv(1, (c_num + 1) * g / 4, o, pixels));
        }
    }
    if o != in_ch && o != g {
        convs.push(ConvCost {
            projection: true,
            ..conv(1, in_ch, o, pixels)
        });
    }
    convs
}

/// Convolutions of the shallow features, global fusion and upsampler.
fn stem_convs(arch: &Arch, body_out_sum: usize) -> Vec<ConvCost> {
    let g0 = arch.g0;
    let Resolution { lr, hr, double, .. } = Resolution::for_scale(arch.scale);
    let mut convs = vec![
        conv(3, 3, g0, lr),
        conv(3, g0, g0, lr),
        conv(1, body_out_sum, g0, lr),
        conv(3, g0, g0, lr),
    ];
    match arch.scale {
        2 => {
            convs.push(conv(3, g0, 3 * g0, lr));
            convs.push(conv(3, 3 * g0 / 4, 3, hr));
        }
        3 => {
            convs.push(conv(3, g0, 27 * g0 / 4, lr));
            convs.push(conv(3, 3 * g0 / 4, 3, hr));
        }
        4 => {
            convs.push(conv(3, g0, 4 * g0, lr));
            convs.push(conv(3, g0, 4 * g0, double));
            convs.push(conv(3, g0, 3, hr));
        }
        other => panic!("scale {other} is not supported (validated earlier: 2, 3 or 4)"),
    }
    convs
}

impl Arch {
    /// Computes the exact cost of the network.
    ///
    /// # Panics
    /// When `scale` is not 2, 3 or 4; configs and CLI arguments are checked before.
    pub fn cost(&self) -> NetworkCost {
        let res = Resolution::for_scale(self.scale);
        let mut in_ch = self.g0;
        let mut blocks = Vec::with_capacity(self.genes.len());
        for gene in self.genes.iter() {
            let convs = block_convs(gene, in_ch, res);
            blocks.push(BlockCost {
                gene: *gene,
                in_ch,
                out_ch: gene.out,
                params: convs.iter().map(|c| c.params(self.bias)).sum(),
                multi_adds: convs.iter().map(ConvCost::multi_adds).sum(),
                convs,
            });
            in_ch = gene.out;
        }
        let body_out_sum = self.genes.iter().map(|g| g.out).sum();
        let stem = stem_convs(self, body_out_sum);
        let stem_params: u64 = stem.iter().map(|c| c.params(self.bias)).sum();
        let stem_multi_adds: u64 = stem.iter().map(ConvCost::multi_adds).sum();
        NetworkCost {
            params: stem_params + blocks.iter().map(|b| b.params).sum::<u64>(),
            multi_adds: stem_multi_adds + blocks.iter().map(|b| b.multi_adds).sum::<u64>(),
            stem_params,
            stem_multi_adds,
            blocks,
        }
    }

    /// Exact trainable values.
    pub fn params(&self) -> u64 {
        self.cost().params
    }

    /// The reference's buggy closed-form estimate, for comparison only.
    pub fn reference_estimate(&self) -> ReferenceEstimate {
        let cost = self.cost();
        let counted = |i: usize, c: &ConvCost| i == 0 || !c.projection;
        let mut params = 0;
        let mut multi_adds = 0;
        for (i, block) in cost.blocks.iter().enumerate() {
            for c in block.convs.iter().filter(|c| counted(i, c)) {
                params += c.params(false);
                multi_adds += c.multi_adds();
            }
        }
        let body_out_sum = self.genes.iter().map(|g| g.out).sum();
        for c in stem_convs(self, body_out_sum) {
            params += c.params(false);
            multi_adds += c.multi_adds();
        }
        ReferenceEstimate {
            params,
            flops: 2 * multi_adds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_counts_follow_powers_of_two() {
        let groups: Vec<usize> = (0..8).map(group_conv_groups).collect();
        assert_eq!(groups, vec![1, 2, 2, 4, 4, 4, 4, 4]);
    }

    #[test]
    fn single_s_block_by_hand() {
        // SFE1 896 + SFE2 9248 + block 14752 + GFF 1056 + 9248 + up 27744 + 651
        let arch = Arch {
            genes: GeneList::parse_args(&["S_4_16_32"]).unwrap(),
            g0: 32,
            scale: 2,
            bias: true,
        };
        let cost = arch.cost();
        assert_eq!(cost.blocks[0].params, 14752);
        assert_eq!(cost.params, 63595);
    }
}
