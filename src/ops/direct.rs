//! Direct (im2col-free) f32 convolution kernels for CPUs with AVX-512.
//!
//! Why: the im2col + GEMM forward copies every input value nine times
//! for a 3x3 convolution (memmove was 18% of a 1280x720 inference's
//! profile), and the `gemm` crate's stable build only has 256-bit (AVX2)
//! microkernels, half the width of the AVX-512 FMA units such CPUs have.
//! Here a block of `CO` output channels × `NB`·16 pixels stays in
//! registers while the input channels and the kernel taps stream past. A
//! 3x3 convolution reads a zero-padded copy of its input rows (one copy
//! instead of nine, and no border tests in the inner loop); a 1x1
//! convolution reads the input planes as they are. Off x86-64, without
//! AVX-512, or with `ESR_EA_NO_DIRECT=1` the GEMM kernels run instead.
//!
//! The sums run over input channels, then taps, in a fixed order per
//! output value: results do not depend on the thread count or timing.

use super::geom::{ConvGeom, Planes};
use super::par::SendPtr;

/// Whether this module's kernels run the f32 forward convolutions: the CPU
/// has AVX-512F and `ESR_EA_NO_DIRECT` is not set. Read once per process.
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| cpu_has_avx512() && !super::env_flag("ESR_EA_NO_DIRECT"))
}

fn cpu_has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The forward convolution of [`super::kernels::conv_forward_into`] with
/// this module's kernels; returns false (nothing done) where they do not
/// apply (see [`enabled`]; kernel sides other than 1 and 3).
///
/// # Safety
/// As [`super::kernels::conv_forward_into`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn conv_forward_f32(
    x: *const f32,
    weight: &[f32],
    bias: Option<&[f32]>,
    g: &ConvGeom,
    relu: bool,
    y: SendPtr<f32>,
    planes: Planes,
    accumulate: bool,
) -> bool {
    if !enabled() || !matches!(g.k, 1 | 3) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX-512F is present (`enabled`); the caller vouches for
        // the buffers.
        unsafe { x86::conv(x, weight, bias, g, relu, y, planes, accumulate) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, weight, bias, relu, y, planes, accumulate);
        false
    }
}

/// Output channels per register block: as many as fit beside the pixel
/// vectors (at most 8, see [`x86`]).
const MAX_CO: usize = 8;

/// Weights reordered for the kernels: for each group and each block of at
/// most [`MAX_CO`] output channels, `[cin_g][k·k][block]`, the block's
/// channels side by side. Block `(grp, co0)` starts at `(grp·cout_g +
/// co0)·cin_g·k·k`, where the plain layout has its first channel.
fn pack_weights(weight: &[f32], g: &ConvGeom) -> Vec<f32> {
    let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.k * g.k);
    let mut packed = vec![0f32; weight.len()];
    for grp in 0..g.groups {
        for (co0, cnt) in co_blocks(cout_g) {
            let base = (grp * cout_g + co0) * cin_g * kk;
            for ci in 0..cin_g {
                for t in 0..kk {
                    for c in 0..cnt {
                        let o = grp * cout_g + co0 + c;
                        packed[base + (ci * kk + t) * cnt + c] = weight[(o * cin_g + ci) * kk + t];
                    }
                }
            }
        }
    }
    packed
}

/// The blocks `(first channel, count)` that `cout` output channels are
/// cut into: full blocks of `min(cout, MAX_CO)`, then the rest.
fn co_blocks(cout: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = cout.clamp(1, MAX_CO);
    (0..cout)
        .step_by(step)
        .map(move |co0| (co0, step.min(cout - co0)))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::geom::{ConvGeom, Planes};
    use super::super::par::{self, SendPtr};
    use super::{co_blocks, pack_weights};

    /// f32 lanes of a 512-bit vector.
    const LANES: usize = 16;

    /// Floats of zero-padded input rows per thread (512 KiB: a tile's rows
    /// of every input channel of a group stay in the core's L2 cache, and
    /// tiles are tall enough that the two halo rows each copies are few).
    const STRIP_BUDGET: usize = 128 * 1024;

    /// Work items wanted per thread, so a late thread has others to help it.
    const ITEMS_PER_THREAD: usize = 4;

    /// One register block's operands.
    struct Block {
        /// The input at this block's first pixel, channel 0, tap offset 0.
        src: *const f32,
        /// Elements from one input channel to the next.
        ch_stride: usize,
        /// Offset of each kernel tap from a pixel's position in `src`.
        taps: *const isize,
        ntaps: usize,
        cin: usize,
        /// Packed weights of the block's channels, `[cin][taps][CO]`.
        weights: *const f32,
        /// The output at this block's first channel and pixel.
        dst: *mut f32,
        /// Elements from one output channel to the next.
        dst_stride: usize,
        /// The block's biases (`CO` of them), or none.
        bias: Option<*const f32>,
        /// Add to what `dst` holds instead of overwriting it.
        accumulate: bool,
        relu: bool,
        /// Lanes of the block's last vector that are inside the image.
        last_mask: u16,
    }

    /// `dst[co][px] = [dst +] bias[co] + Σ_ci Σ_t weights · src`, for `CO`
    /// channels × `NB` vectors of pixels, accumulated in registers.
    ///
    /// # Safety
    /// AVX-512F must be present; every address the block reads (masked-off
    /// lanes excepted) and writes must be inside live buffers.
    #[target_feature(enable = "avx512f")]
    unsafe fn block<const CO: usize, const NB: usize>(a: &Block) {
        let mask = |v: usize| if v + 1 == NB { a.last_mask } else { 0xFFFF };
        let mut acc = [[_mm512_setzero_ps(); NB]; CO];
        for (co, row) in acc.iter_mut().enumerate() {
            for (v, r) in row.iter_mut().enumerate() {
                if a.accumulate {
                    *r = _mm512_maskz_loadu_ps(mask(v), a.dst.add(co * a.dst_stride + v * LANES));
                } else if let Some(b) = a.bias {
                    *r = _mm512_set1_ps(*b.add(co));
                }
            }
        }
        let mut w = a.weights;
        for ci in 0..a.cin {
            let base = a.src.add(ci * a.ch_stride);
            for t in 0..a.ntaps {
                let p = base.offset(*a.taps.add(t));
                let mut inp = [_mm512_setzero_ps(); NB];
                for (v, x) in inp.iter_mut().enumerate() {
                    *x = _mm512_maskz_loadu_ps(mask(v), p.add(v * LANES));
                }
                for (co, row) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*w.add(co));
                    for (r, x) in row.iter_mut().zip(&inp) {
                        *r = _mm512_fmadd_ps(*x, wv, *r);
                    }
                }
                w = w.add(CO);
            }
        }
        for (co, row) in acc.iter().enumerate() {
            for (v, r) in row.iter().enumerate() {
                let out = if a.relu {
                    _mm512_max_ps(*r, _mm512_setzero_ps())
                } else {
                    *r
                };
                _mm512_mask_storeu_ps(a.dst.add(co * a.dst_stride + v * LANES), mask(v), out);
            }
        }
    }

    /// Pixel vectors per register block for `co` channels: `co·nb`
    /// accumulators plus `nb` input vectors within the 32 registers.
    fn wide_nb(co: usize) -> usize {
        match co {
            1 | 2 => 8,
            3 | 4 => 6,
            5 | 6 => 4,
            _ => 3,
        }
    }

    /// Runs [`block`] for `co` channels and `nb` (`wide_nb(co)` or 1) vectors.
    ///
    /// # Safety
    /// As [`block`].
    unsafe fn run(co: usize, nb: usize, a: &Block) {
        macro_rules! arms {
            ($($c:literal => $n:literal),*) => {
                match (co, nb == 1) {
                    $(($c, false) => block::<$c, $n>(a), ($c, true) => block::<$c, 1>(a),)*
                    _ => unreachable!("register blocks hold 1 to 8 channels"),
                }
            };
        }
        // SAFETY: forwarded to the caller.
        unsafe { arms!(1 => 8, 2 => 8, 3 => 6, 4 => 6, 5 => 4, 6 => 4, 7 => 3, 8 => 3) }
    }

    /// What stays the same over one row pass of one group.
    struct Pass<'a> {
        ch_stride: usize,
        /// Offsets of the kernel taps from a pixel's position in the input
        /// (the first `ntaps`).
        taps: [isize; 9],
        ntaps: usize,
        cin: usize,
        cout: usize,
        /// This group's packed weights.
        weights: &'a [f32],
        /// This group's biases.
        bias: Option<&'a [f32]>,
        dst_stride: usize,
        accumulate: bool,
        relu: bool,
    }

    /// Every output channel of one group over a run of `n` pixels: `src` at
    /// its first pixel (channel 0), `dst` likewise. Pixel chunks go outer so
    /// a chunk's input stays in L1 while every channel block reads it.
    ///
    /// # Safety
    /// As [`block`], for the whole run.
    unsafe fn row_pass(p: &Pass, src: *const f32, dst: *mut f32, n: usize) {
        let kk = p.ntaps;
        let chunk = wide_nb(p.cout.min(super::MAX_CO)) * LANES;
        let mut x0 = 0;
        while x0 < n {
            let cw = chunk.min(n - x0);
            for (co0, cnt) in co_blocks(p.cout) {
                let nbw = wide_nb(cnt);
                let vecs = cw.div_ceil(LANES);
                let mut v0 = 0;
                while v0 < vecs {
                    let nb = if vecs - v0 >= nbw { nbw } else { 1 };
                    let end_px = ((v0 + nb) * LANES).min(cw);
                    let tail = end_px - (v0 + nb - 1) * LANES;
                    let a = Block {
                        src: src.add(x0 + v0 * LANES),
                        ch_stride: p.ch_stride,
                        taps: p.taps.as_ptr(),
                        ntaps: kk,
                        cin: p.cin,
                        weights: p.weights[co0 * p.cin * kk..].as_ptr(),
                        dst: dst.add(co0 * p.dst_stride + x0 + v0 * LANES),
                        dst_stride: p.dst_stride,
                        bias: p.bias.map(|b| b[co0..].as_ptr()),
                        accumulate: p.accumulate,
                        relu: p.relu,
                        last_mask: if tail == LANES {
                            0xFFFF
                        } else {
                            (1u16 << tail) - 1
                        },
                    };
                    // SAFETY: forwarded to the caller; `tail` masks the
                    // lanes past the run's end.
                    unsafe { run(cnt, nb, &a) };
                    v0 += nb;
                }
            }
            x0 += cw;
        }
    }

    /// See [`super::conv_forward_f32`].
    ///
    /// # Safety
    /// AVX-512F must be present; buffers as
    /// [`super::super::kernels::conv_forward_into`].
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn conv(
        x: *const f32,
        weight: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
        relu: bool,
        y: SendPtr<f32>,
        planes: Planes,
        accumulate: bool,
    ) {
        if g.batch == 0 || g.hw() == 0 || g.c_out == 0 {
            return;
        }
        let (h, w, hw) = (g.h, g.w, g.hw());
        let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.k * g.k);
        let packed = pack_weights(weight, g);
        let threads = par::threads();
        let x = SendPtr(x.cast_mut());
        let pass = |grp: usize, ch_stride: usize, taps: [isize; 9]| Pass {
            ch_stride,
            taps,
            ntaps: kk,
            cin: cin_g,
            cout: cout_g,
            weights: &packed[grp * cout_g * cin_g * kk..][..cout_g * cin_g * kk],
            bias: bias.map(|b| &b[grp * cout_g..(grp + 1) * cout_g]),
            dst_stride: hw,
            accumulate,
            relu,
        };
        if g.k == 1 {
            debug_assert_eq!(g.shuffle, 1, "1x1 convolutions take no shuffle");
            let tiling = g.tiling(threads);
            par::for_each(
                g.batch * tiling.count,
                || (),
                |_, item| {
                    let (b, t) = (item / tiling.count, item % tiling.count);
                    let y0 = t * tiling.rows;
                    let n = tiling.rows.min(h - y0) * w;
                    for grp in 0..g.groups {
                        let p = pass(grp, hw, [0; 9]);
                        // SAFETY: this item's pixels of image b, group grp;
                        // rows y0.. of the output belong to this item alone.
                        unsafe {
                            let src = x.add(b * planes.x_batch + grp * cin_g * hw + y0 * w);
                            let dst = y.add(b * planes.y_batch + grp * cout_g * hw + y0 * w);
                            row_pass(&p, src.cast_const(), dst, n);
                        }
                    }
                },
            );
            return;
        }
        // 3x3: rows y0-1 ..= y0+rows of each input channel, copied with a
        // zero column on the left and zeros from column w+1 on; strip
        // column c holds image column c-1, so tap (ky, kx) of output
        // (r, col) is at strip row r+ky, column col+kx.
        let pw = w.div_ceil(LANES) * LANES + LANES;
        let budget_rows = (STRIP_BUDGET / (cin_g * pw).max(1)).saturating_sub(2);
        let wanted = (threads * ITEMS_PER_THREAD).div_ceil(g.batch);
        let rows = budget_rows.min(h.div_ceil(wanted)).clamp(1, h);
        let count = h.div_ceil(rows);
        let strip_rows = rows + 2;
        let ch_stride = strip_rows * pw;
        let mut taps = [0isize; 9];
        for (t, tap) in taps.iter_mut().enumerate() {
            *tap = ((t / 3) * pw + t % 3) as isize;
        }
        par::for_each(
            g.batch * count,
            || vec![0f32; cin_g * ch_stride],
            |strip, item| {
                let (b, t) = (item / count, item % count);
                let y0 = t * rows;
                let nrows = rows.min(h - y0);
                for grp in 0..g.groups {
                    for ci in 0..cin_g {
                        let c = g.in_channel(grp * cin_g + ci);
                        for r in 0..nrows + 2 {
                            let iy = (y0 + r).checked_sub(1).filter(|&iy| iy < h);
                            let row = &mut strip[ci * ch_stride + r * pw + 1..][..w];
                            match iy {
                                // SAFETY: row iy of channel c of image b.
                                Some(iy) => unsafe {
                                    let s = x.add(b * planes.x_batch + c * hw + iy * w);
                                    std::ptr::copy_nonoverlapping(
                                        s.cast_const(),
                                        row.as_mut_ptr(),
                                        w,
                                    );
                                },
                                None => row.fill(0.0),
                            }
                        }
                    }
                    let p = pass(grp, ch_stride, taps);
                    for r in 0..nrows {
                        // SAFETY: the strip holds rows r..r+2 (plus the
                        // zero columns and the slack the last vector reads);
                        // output row y0+r of this group is this item's.
                        unsafe {
                            let dst = y.add(b * planes.y_batch + grp * cout_g * hw + (y0 + r) * w);
                            row_pass(&p, strip[r * pw..].as_ptr(), dst, w);
                        }
                    }
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernels::{conv_forward, conv_forward_into};
    use super::*;

    /// The definition, in f64, with the shuffle applied to the input reads:
    /// `[acc +] bias + Σ w · x`, then ReLU.
    fn naive(x: &[f32], wt: &[f32], bias: Option<&[f32]>, g: &ConvGeom, relu: bool) -> Vec<f64> {
        let (h, w, k, p) = (g.h as isize, g.w as isize, g.k, g.pad() as isize);
        let mut y = vec![0.0; g.y_len()];
        for b in 0..g.batch {
            for o in 0..g.c_out {
                let grp = o / g.cout_g();
                for yy in 0..h {
                    for xx in 0..w {
                        let mut s = bias.map_or(0.0, |b| f64::from(b[o]));
                        for ci in 0..g.cin_g() {
                            let c = g.in_channel(grp * g.cin_g() + ci);
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = (yy + ky as isize - p, xx + kx as isize - p);
                                    if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                        let wv = wt[((o * g.cin_g() + ci) * k + ky) * k + kx];
                                        let xv = x[((b * g.c_in + c) * g.h + iy as usize) * g.w
                                            + ix as usize];
                                        s += f64::from(wv) * f64::from(xv);
                                    }
                                }
                            }
                        }
                        let i = ((b * g.c_out + o) * g.h + yy as usize) * g.w + xx as usize;
                        y[i] = if relu { s.max(0.0) } else { s };
                    }
                }
            }
        }
        y
    }

    fn ramp(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    fn close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(a) - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what}: element {i}: {a} vs {b}"
            );
        }
    }

    /// Whatever path runs (direct on AVX-512, GEMM elsewhere), the f32
    /// forward equals the definition: 1x1 and 3x3, groups, shuffles,
    /// widths around the 16-lane vectors, bias, ReLU, accumulation.
    #[test]
    fn forward_matches_the_definition() {
        let cases = [
            // (batch, c_in, c_out, h, w, k, groups, shuffle)
            (2, 4, 8, 5, 7, 3, 1, 1),
            (1, 8, 4, 3, 17, 3, 2, 2),
            (1, 12, 24, 4, 33, 3, 4, 3),
            (2, 6, 3, 6, 16, 3, 1, 1),
            (1, 5, 9, 2, 50, 1, 1, 1),
            (3, 16, 16, 1, 1, 3, 4, 4),
            (1, 3, 20, 7, 40, 3, 1, 1),
            (1, 40, 6, 3, 21, 1, 2, 1),
        ];
        for (batch, c_in, c_out, h, w, k, groups, shuffle) in cases {
            let g = ConvGeom {
                batch,
                c_in,
                c_out,
                h,
                w,
                k,
                groups,
                shuffle,
            };
            let x = ramp(g.x_len(), 0.3);
            let wt = ramp(g.w_len(), 1.1);
            let bias = ramp(c_out, 2.0);
            for (b, relu) in [(None, false), (Some(&bias[..]), true)] {
                let got = conv_forward(&x, &wt, b, &g, relu);
                close(&got, &naive(&x, &wt, b, &g, relu), &format!("{g:?}"));
            }
            // Accumulating into what the output holds.
            let start = ramp(g.y_len(), 0.9);
            let mut acc = start.clone();
            let planes = Planes {
                x_batch: c_in * g.hw(),
                y_batch: c_out * g.hw(),
            };
            // SAFETY: dense buffers of the convolution's sizes.
            unsafe {
                conv_forward_into(
                    x.as_ptr(),
                    &wt,
                    None,
                    &g,
                    false,
                    SendPtr(acc.as_mut_ptr()),
                    planes,
                    true,
                )
            };
            let want: Vec<f64> = naive(&x, &wt, None, &g, false)
                .iter()
                .zip(&start)
                .map(|(a, &s)| a + f64::from(s))
                .collect();
            close(&acc, &want, &format!("accumulate {g:?}"));
        }
    }

    #[test]
    fn channel_blocks_cover_every_channel_once() {
        for cout in [1, 3, 4, 8, 9, 16, 24, 27, 96] {
            let blocks: Vec<(usize, usize)> = co_blocks(cout).collect();
            let mut next = 0;
            for &(co0, cnt) in &blocks {
                assert_eq!(co0, next);
                assert!((1..=MAX_CO).contains(&cnt));
                next += cnt;
            }
            assert_eq!(next, cout, "{blocks:?}");
        }
    }
}
