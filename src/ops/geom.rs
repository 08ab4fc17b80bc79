//! Shape bookkeeping of one stride-1 "same" convolution, and how its work is
//! cut into tiles.

use candle_core::{bail, Result, Tensor};

/// Floats of im2col scratch per thread a tile may use: 64 Ki f32 = 256 KiB, so
/// the columns a thread writes are still in its L2 cache when the GEMM reads
/// them back.
const COLS_BUDGET: usize = 64 * 1024;

/// Pixels per tile for 1x1 convolutions (no scratch): large enough for long
/// GEMM rows, small enough to split one big image over the threads.
const PIXELS_1X1: usize = 4096;

/// Work items wanted per thread, so a late thread has others to help it.
const ITEMS_PER_THREAD: usize = 4;

/// Geometry of a convolution of `[batch, c_in, h, w]` by `[c_out, c_in/groups,
/// k, k]` with stride 1 and padding `(k-1)/2` (output `[batch, c_out, h, w]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Height of input and output.
    pub h: usize,
    /// Width of input and output.
    pub w: usize,
    /// Kernel side (odd).
    pub k: usize,
    /// Channel groups.
    pub groups: usize,
    /// ShuffleNet channel shuffle applied to the input first, with this many
    /// shuffle groups (1: none): logical input channel `a·s + b` reads
    /// stored channel `b·(c_in/s) + a`. Folding it into the im2col saves
    /// the shuffled copy of the input and its gradient.
    pub shuffle: usize,
}

/// How the output rows of each image are cut: `count` tiles of `rows` rows
/// (the last one may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Rows per tile.
    pub rows: usize,
    /// Tiles per image.
    pub count: usize,
}

impl ConvGeom {
    /// Checks `x` `[B, C, H, W]`, `weight` `[O, C/groups, k, k]` (k odd) and
    /// `bias` `[O]` against each other and returns their geometry.
    pub fn new(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, groups: usize) -> Result<Self> {
        let (batch, c_in, h, w) = match x.dims() {
            &[b, c, h, w] => (b, c, h, w),
            d => bail!("conv2d: input must be [batch, channels, height, width], got {d:?}"),
        };
        let (c_out, cin_g, kh, kw) = match weight.dims() {
            &[o, i, kh, kw] => (o, i, kh, kw),
            d => bail!("conv2d: weight must be [out, in/groups, k, k], got {d:?}"),
        };
        if groups == 0 || c_in % groups != 0 || c_out % groups != 0 {
            bail!("conv2d: groups {groups} must divide input channels {c_in} and output channels {c_out}");
        }
        if cin_g * groups != c_in {
            bail!("conv2d: weight takes {cin_g} channels per group but the input has {c_in} channels in {groups} groups");
        }
        if kh != kw || kh % 2 == 0 {
            bail!("conv2d: kernel must be square with an odd side, got {kh}x{kw}");
        }
        if let Some(b) = bias {
            if b.dims() != [c_out] {
                bail!("conv2d: bias must be [{c_out}], got {:?}", b.dims());
            }
        }
        if x.dtype() != weight.dtype() || bias.is_some_and(|b| b.dtype() != x.dtype()) {
            bail!("conv2d: input, weight and bias must share one dtype");
        }
        Ok(ConvGeom {
            batch,
            c_in,
            c_out,
            h,
            w,
            k: kh,
            groups,
            shuffle: 1,
        })
    }

    /// The stored input channel that logical (shuffled) channel `k` reads.
    pub fn in_channel(&self, k: usize) -> usize {
        if self.shuffle <= 1 {
            k
        } else {
            (k % self.shuffle) * (self.c_in / self.shuffle) + k / self.shuffle
        }
    }

    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }

    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }

    /// Zero padding on each side.
    pub fn pad(&self) -> usize {
        (self.k - 1) / 2
    }

    /// Pixels per channel plane.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }

    /// Rows of one group's im2col matrix (its GEMM inner dimension).
    pub fn col_rows(&self) -> usize {
        self.cin_g() * self.k * self.k
    }

    /// Elements of the input.
    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.hw()
    }

    /// Elements of the output.
    pub fn y_len(&self) -> usize {
        self.batch * self.c_out * self.hw()
    }

    /// Elements of the weight.
    pub fn w_len(&self) -> usize {
        self.c_out * self.col_rows()
    }

    /// The geometry of the input gradient as a convolution: the output
    /// gradient convolved with the flipped, transposed weight (see
    /// [`super::kernels::flip_weight`]) — inputs and outputs swap roles.
    pub fn transposed(&self) -> ConvGeom {
        ConvGeom {
            c_in: self.c_out,
            c_out: self.c_in,
            shuffle: 1,
            ..*self
        }
    }

    /// Cuts each image's rows into tiles: small enough that a tile's im2col
    /// columns fit [`COLS_BUDGET`], and numerous enough to keep `threads`
    /// threads busy.
    pub fn tiling(&self, threads: usize) -> Tiling {
        let h = self.h.max(1);
        let w = self.w.max(1);
        let max_pixels = if self.k == 1 {
            PIXELS_1X1
        } else {
            COLS_BUDGET / self.col_rows().max(1)
        };
        let max_rows = (max_pixels / w).clamp(1, h);
        let wanted = (threads * ITEMS_PER_THREAD).div_ceil(self.batch.max(1));
        let count = h.div_ceil(max_rows).max(wanted.min(h)).max(1);
        let rows = h.div_ceil(count);
        Tiling {
            rows,
            count: h.div_ceil(rows),
        }
    }
}

/// Batch strides of a convolution's input and output inside larger NCHW
/// buffers: image `b`'s channel `c` plane starts `b·batch + c·h·w` elements
/// after the buffer's start. A dense block keeps all its features in one
/// buffer; each convolution reads a prefix of its channels and writes the
/// next ones in place, with no concatenation copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planes {
    /// Elements from one image of the input to the next.
    pub x_batch: usize,
    /// Elements from one image of the output to the next.
    pub y_batch: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(batch: usize, c: usize, h: usize, w: usize, k: usize) -> ConvGeom {
        ConvGeom {
            batch,
            c_in: c,
            c_out: c,
            h,
            w,
            k,
            groups: 1,
            shuffle: 1,
        }
    }

    #[test]
    fn shuffle_maps_logical_to_stored_channels() {
        let g = ConvGeom {
            shuffle: 2,
            ..geom(1, 6, 1, 1, 3)
        };
        // channel_shuffle of [0..6] with 2 groups is [0, 3, 1, 4, 2, 5].
        let map: Vec<usize> = (0..6).map(|k| g.in_channel(k)).collect();
        assert_eq!(map, vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(geom(1, 6, 1, 1, 3).in_channel(4), 4);
    }

    #[test]
    fn tiles_cover_every_row() {
        for (g, t) in [
            (geom(16, 16, 32, 32, 3), 2),
            (geom(1, 64, 128, 128, 3), 2),
            (geom(1, 8, 5, 7, 1), 2),
            (geom(3, 300, 9, 3000, 3), 16),
        ] {
            let tiling = g.tiling(t);
            assert!(tiling.rows >= 1 && tiling.count >= 1);
            assert!(tiling.rows * tiling.count >= g.h, "{g:?} {tiling:?}");
            assert!(tiling.rows * (tiling.count - 1) < g.h, "{g:?} {tiling:?}");
        }
    }

    #[test]
    fn big_single_image_is_split_for_the_threads() {
        let tiling = geom(1, 16, 128, 128, 1).tiling(2);
        assert!(tiling.count >= 8);
    }
}
