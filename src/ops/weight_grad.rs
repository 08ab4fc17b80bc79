//! The convolution's weight and bias gradient computed directly on AVX-512
//! or AVX2 vectors: `dW[o][ci][t] = Σ_{b, pixels} grad[b][o][p] ·
//! x[b][ci][p + tap t]`, without the im2col copy and with full-width
//! vectors (the `gemm` crate's f32 kernels are 256-bit on stable Rust).
//!
//! A register block holds `CO` output channels × `NT` taps (a tap is one
//! `(input channel, ky, kx)`, numbered as the weight's `[cin_g][k][k]`) as
//! vector accumulators, streams one tile's pixels through them, and adds
//! their lane sums to the piece's buffer at the end. The sum over images
//! and tiles goes through [`super::par::sum_in_pieces`], as the GEMM path's
//! does, so the result does not depend on the number of threads.

use super::direct::{selected, Kernels};
use super::geom::{ConvGeom, Planes};

/// Floats of one tile's working set (zero-padded input rows of a group's
/// input channels and the tile's output-gradient rows): 512 KiB, so both
/// stay in the core's L2 cache while every register block reads them.
const TILE_BUDGET: usize = 128 * 1024;

/// Pieces the sum over images and tiles is cut into (see
/// [`super::par::sum_in_pieces`]): twice the usual, so that a batch of 16
/// makes one image a piece and a thread that finishes first waits for half
/// as long (3x3 gradients of the seed step +3-7% on 2 threads; fixed, so
/// results do not depend on the number of threads).
const PIECES: usize = 16;

/// `ESR_EA_GEMM_WEIGHT_GRAD=1` keeps the weight gradient on the GEMM path
/// while the forward runs the direct kernels: the two compared in one
/// binary (`esr-ea speed`).
static GEMM_WEIGHT_GRAD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// [`super::kernels::conv_grad_weight_strided`] with the direct kernels,
/// or `None` where they do not apply (GEMM selected or asked for with
/// `ESR_EA_GEMM_WEIGHT_GRAD=1`, kernel sides other than 1 and 3).
pub(super) fn conv_grad_weight_f32(
    x: &[f32],
    grad: &[f32],
    g: &ConvGeom,
    planes: Planes,
    with_bias: bool,
) -> Option<Vec<f32>> {
    if !matches!(g.k, 1 | 3) || super::env_flag_once(&GEMM_WEIGHT_GRAD, "ESR_EA_GEMM_WEIGHT_GRAD") {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use super::direct::x86::{Avx2, Avx512};
        let run = |grad_weight: unsafe fn(_, _, _, _, _, _) -> Vec<f32>| {
            // SAFETY: `selected` only picks kernels the CPU has.
            Some(unsafe { grad_weight(x, grad, g, planes, with_bias, TILE_BUDGET) })
        };
        match selected() {
            Kernels::Avx512 => run(x86::grad_weight::<Avx512>),
            Kernels::Avx2 => run(x86::grad_weight::<Avx2>),
            Kernels::Gemm => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, grad, planes, with_bias, selected, Kernels::Gemm);
        None
    }
}

/// The rows of each image one work item covers: as many as fit
/// [`TILE_BUDGET`], evened out. Fixed by the shapes alone (never by the
/// thread count): the items are the pieces' summands.
fn tile_rows(g: &ConvGeom, strip_pitch: usize, budget: usize) -> usize {
    let per_row = g.cin_g() * strip_pitch.max(g.w) + g.cout_g() * g.w;
    let fit = (budget / per_row.max(1)).saturating_sub(2).max(1);
    let count = g.h.div_ceil(fit).max(1);
    g.h.div_ceil(count).max(1)
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::super::direct::x86::{fill_strip, Avx2, Avx512, Isa};
    use super::super::geom::{ConvGeom, Planes};
    use super::super::par;
    use super::{tile_rows, PIECES};

    /// One register block's operands: `rows` runs of `width` pixels.
    pub(in crate::ops) struct Block {
        /// The input at the first run's first pixel; tap `j` of a pixel is
        /// at `x + x_offs[j]` from it, and each run `x_pitch` after the
        /// previous one.
        x: *const f32,
        x_offs: *const isize,
        x_pitch: usize,
        /// The output gradient at the first run's first pixel; channel `c`
        /// of the block at `g + g_offs[c]`, each run `g_pitch` after the
        /// previous one.
        g: *const f32,
        g_offs: *const isize,
        g_pitch: usize,
        /// Pixels in a run, and runs.
        width: usize,
        rows: usize,
        /// The weight gradient at the block's first channel and tap.
        out: *mut f32,
        /// Elements from one output channel's taps to the next's.
        out_stride: usize,
        /// Channels and taps of the block that are real: the others repeat
        /// the last real one (so one block shape serves the edges) and are
        /// not written.
        co_valid: usize,
        nt_valid: usize,
    }

    /// The most channels or taps a block shape has.
    const MAX_BLOCK: usize = 16;

    /// Register blocks per instruction set: `(channels, taps)`.
    pub(in crate::ops) trait GradIsa: Isa {
        /// Output channels × taps of a block, in order of preference: the
        /// first, and the second (fewer channels) where fewer channels
        /// leave less of the blocks empty ([`pick_shape`]).
        const SHAPES: [(usize, usize); 2];
        /// Runs [`block`] for `SHAPES[shape]`, compiled for this set.
        ///
        /// # Safety
        /// As [`block`].
        unsafe fn run_grad(shape: usize, a: &Block);
        /// [`run_sum`], compiled for this set.
        ///
        /// # Safety
        /// As [`run_sum`].
        unsafe fn sum(p: *const f32, n: usize) -> f32;
    }

    /// [`GradIsa`] for `$isa`, compiled for `$features`.
    macro_rules! grad_isa {
        ($isa:ty, $features:literal, ($co:literal, $nt:literal), ($co2:literal, $nt2:literal)) => {
            impl GradIsa for $isa {
                const SHAPES: [(usize, usize); 2] = [($co, $nt), ($co2, $nt2)];
                unsafe fn run_grad(shape: usize, a: &Block) {
                    #[target_feature(enable = $features)]
                    unsafe fn entry(a: &Block) {
                        // SAFETY: forwarded to the caller; compiled for the set.
                        unsafe { block::<$isa, $co, $nt>(a) }
                    }
                    #[target_feature(enable = $features)]
                    unsafe fn narrow(a: &Block) {
                        // SAFETY: as `entry`.
                        unsafe { block::<$isa, $co2, $nt2>(a) }
                    }
                    // SAFETY: forwarded to the caller.
                    unsafe {
                        if shape == 0 {
                            entry(a)
                        } else {
                            narrow(a)
                        }
                    }
                }
                unsafe fn sum(p: *const f32, n: usize) -> f32 {
                    #[target_feature(enable = $features)]
                    unsafe fn entry(p: *const f32, n: usize) -> f32 {
                        // SAFETY: forwarded to the caller; compiled for the set.
                        unsafe { run_sum::<$isa>(p, n) }
                    }
                    // SAFETY: forwarded to the caller.
                    unsafe { entry(p, n) }
                }
            }
        };
    }

    /// The index into `shapes` whose blocks cover `channels` × `taps` with
    /// the fewest products, the first on a tie: a G block's grouped
    /// convolutions of 2 channels a group would leave half of a 4-channel
    /// block empty (a count of products, not a measured speed-up).
    pub(in crate::ops) fn pick_shape(
        shapes: &[(usize, usize)],
        channels: usize,
        taps: usize,
    ) -> usize {
        let work = |&(co, nt): &(usize, usize)| channels.div_ceil(co) * co * taps.div_ceil(nt) * nt;
        let best = shapes.iter().map(work).min().unwrap_or(0);
        shapes.iter().position(|s| work(s) == best).unwrap_or(0)
    }

    // 4 channels × 4 taps: 16 accumulators, 4 gradient vectors and an
    // input vector. Measured against 2 x 9, 2 x 8, 3 x 6, 4 x 6 and 6 x 3
    // on the seed network's backward (AVX-512 EPYC, 2 threads): 2 x 9 made
    // LLVM spill accumulators to the stack inside the loop (370 ms), 4 x 6
    // and 6 x 3 ran at 390-440 ms, 4 x 4 at 311 ms. 2 x 8 serves groups of
    // 2 channels (not measured on AVX-512: the same code as AVX2's, which
    // the tests check).
    grad_isa!(Avx512, "avx512f", (4, 4), (2, 8));
    // 16 registers: 4 channels × 3 taps = 12 accumulators, 3 input vectors
    // and a gradient vector (7 loads per 12 FMAs; a 3x3 kernel's 3 taps are
    // one row of a channel's strip, read at consecutive offsets). Against
    // 2 x 6 (8 loads per 12), interleaved in one process on data cold in
    // the caches as in a training step (Zen 3, 2 threads): 3x3 +3-8%, 1x1
    // +2-5%; 6 x 2 and 3 x 4 (a partial block on 16 channels) were slower.
    // 2 x 6 serves groups of 2 channels.
    grad_isa!(Avx2, "avx2,fma", (4, 3), (2, 6));

    /// `out[c][j] += Σ_px g[c][px] · x[px + x_offs[j]]` for the block's `CO`
    /// channels and `NT` taps, summed in vector lanes over the run, then
    /// across lanes.
    ///
    /// # Safety
    /// The CPU has `I`'s instruction set and this is inlined into a
    /// function compiled for it; every address read (masked-off lanes
    /// excepted) and written must be inside live buffers.
    #[inline(always)]
    unsafe fn block<I: Isa, const CO: usize, const NT: usize>(a: &Block) {
        let lanes = I::LANES;
        let whole = a.width / lanes;
        let tail = a.width - whole * lanes;
        let xs: [*const f32; NT] = std::array::from_fn(|j| a.x.offset(*a.x_offs.add(j)));
        let gs: [*const f32; CO] = std::array::from_fn(|c| a.g.offset(*a.g_offs.add(c)));
        let last = I::mask(tail.max(1));
        let mut acc = [[I::zero(); NT]; CO];
        for r in 0..a.rows {
            let (xr, gr) = (r * a.x_pitch, r * a.g_pitch);
            for v in 0..whole {
                step::<I, CO, NT>(&mut acc, &xs, &gs, xr + v * lanes, gr + v * lanes, |p| {
                    I::load(p)
                });
            }
            if tail > 0 {
                let at = whole * lanes;
                step::<I, CO, NT>(&mut acc, &xs, &gs, xr + at, gr + at, |p| {
                    I::load_masked(p, last)
                });
            }
        }
        for (c, row) in acc.iter().enumerate().take(a.co_valid) {
            for (j, v) in row.iter().enumerate().take(a.nt_valid) {
                *a.out.add(c * a.out_stride + j) += I::hsum(*v);
            }
        }
    }

    /// One vector of pixels of [`block`]: input offset `xp`, gradient
    /// offset `gp`, read with `load`. The smaller side is loaded first and
    /// kept in registers (AVX2's 4 x 3 would need 17 with the gradient
    /// kept).
    ///
    /// # Safety
    /// As [`block`].
    #[inline(always)]
    unsafe fn step<I: Isa, const CO: usize, const NT: usize>(
        acc: &mut [[I::V; NT]; CO],
        xs: &[*const f32; NT],
        gs: &[*const f32; CO],
        xp: usize,
        gp: usize,
        load: impl Fn(*const f32) -> I::V,
    ) {
        if CO <= NT {
            let gv: [I::V; CO] = std::array::from_fn(|c| load(gs[c].add(gp)));
            for (j, x) in xs.iter().enumerate() {
                let xv = load(x.add(xp));
                for c in 0..CO {
                    acc[c][j] = I::fmadd(gv[c], xv, acc[c][j]);
                }
            }
        } else {
            let xv: [I::V; NT] = std::array::from_fn(|j| load(xs[j].add(xp)));
            for (c, g) in gs.iter().enumerate() {
                let gv = load(g.add(gp));
                for j in 0..NT {
                    acc[c][j] = I::fmadd(gv, xv[j], acc[c][j]);
                }
            }
        }
    }

    /// `Σ p[0..n]`, in vector lanes (four vectors at a time), then across
    /// them: a fixed order for a given `n`.
    ///
    /// # Safety
    /// As [`block`]; `p` readable for `n` floats.
    #[inline(always)]
    unsafe fn run_sum<I: Isa>(p: *const f32, n: usize) -> f32 {
        let lanes = I::LANES;
        let mut acc = [I::zero(); 4];
        let whole = n / lanes;
        for v in 0..whole {
            let slot = &mut acc[v % 4];
            *slot = I::fmadd(I::load(p.add(v * lanes)), I::splat(1.0), *slot);
        }
        let tail = n - whole * lanes;
        if tail > 0 {
            let v = I::load_masked(p.add(whole * lanes), I::mask(tail));
            acc[whole % 4] = I::fmadd(v, I::splat(1.0), acc[whole % 4]);
        }
        (I::hsum(acc[0]) + I::hsum(acc[1])) + (I::hsum(acc[2]) + I::hsum(acc[3]))
    }

    /// The weight gradient (`[c_out, cin_g, k, k]`, then the bias gradient
    /// when `with_bias`) on `I`'s vectors, in tiles of at most `budget`
    /// floats of working set; see
    /// [`super::super::kernels::conv_grad_weight_strided`].
    ///
    /// # Safety
    /// The CPU has `I`'s instruction set.
    pub(in crate::ops) unsafe fn grad_weight<I: GradIsa>(
        x: &[f32],
        grad: &[f32],
        g: &ConvGeom,
        planes: Planes,
        with_bias: bool,
        budget: usize,
    ) -> Vec<f32> {
        let (h, w, hw, lanes) = (g.h, g.w, g.hw(), I::LANES);
        let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.k * g.k);
        let w_len = g.w_len();
        let len = w_len + if with_bias { g.c_out } else { 0 };
        if g.batch == 0 || hw == 0 || g.c_out == 0 {
            return vec![0.0; len];
        }
        let taps = cin_g * kk;
        let shape = pick_shape(&I::SHAPES, cout_g, taps);
        let (co_block, nt_block) = I::SHAPES[shape];
        // 3x3: the input's rows y0-1 ..= y0+rows are copied `pitch = w + 2`
        // apart, each after a zero column and before another (shared with
        // the next row). Tap (ky, kx) of the tile's pixel (r, col) is then at
        // strip position `r·pitch + col + ky·pitch + kx`. Where rows are
        // whole vectors (or nearly), each row is one run and the gradient
        // is read in place; otherwise the gradient's rows are copied the
        // same `pitch` apart, with zeros between them, and the whole tile is
        // one run (a 12-pixel row would be one vector and a half-empty one).
        // 1x1: a tile's rows are one run in each plane, read in place.
        let pitch = if g.k == 3 { w + 2 } else { w };
        let by_rows = w.next_multiple_of(lanes) <= pitch;
        let rows = tile_rows(g, pitch, budget);
        let count = h.div_ceil(rows);
        let x_stride = if g.k == 3 {
            (rows + 2) * pitch + lanes
        } else {
            hw
        };
        let x_offs: Vec<isize> = (0..taps)
            .map(|j| {
                let (ci, t) = (j / kk, j % kk);
                (ci * x_stride + (t / g.k) * pitch + t % g.k) as isize
            })
            .collect();
        let g_stride = rows * pitch;
        let strips = || {
            if g.k == 3 {
                let gstrip = if by_rows { 0 } else { cout_g * g_stride };
                (vec![0f32; cin_g * x_stride], vec![0f32; gstrip])
            } else {
                (Vec::new(), Vec::new())
            }
        };
        par::sum_in_pieces(
            PIECES,
            g.batch * count,
            len,
            0.0,
            strips,
            |acc, (xstrip, gstrip), item| {
                let (b, t) = (item / count, item % count);
                let y0 = t * rows;
                let nrows = rows.min(h - y0);
                let xb = &x[b * planes.x_batch..][..g.c_in * hw];
                for grp in 0..g.groups {
                    let gfirst = b * planes.y_batch + grp * cout_g * hw + y0 * w;
                    // (input and gradient at the first run's first pixel,
                    // their run pitches, the gradient's channel stride,
                    // run length, runs)
                    let (xsrc, gsrc, x_pitch, g_pitch, gch, width, runs) = if g.k == 3 {
                        for ci in 0..cin_g {
                            let c = g.in_channel(grp * cin_g + ci);
                            let plane = &xb[c * hw..][..hw];
                            let strip = &mut xstrip[ci * x_stride..];
                            // SAFETY: the CPU has the set; `plane` is the
                            // channel's, rows y0..y0+nrows inside it.
                            unsafe {
                                fill_strip::<I>(plane.as_ptr(), strip, (y0, nrows), (h, w), pitch)
                            };
                        }
                        if by_rows {
                            let gsrc = grad[gfirst..].as_ptr();
                            (xstrip.as_ptr(), gsrc, pitch, w, hw, w, nrows)
                        } else {
                            for co in 0..cout_g {
                                let rows = &grad[gfirst + co * hw..][..nrows * w];
                                let to = &mut gstrip[co * g_stride..][..(nrows - 1) * pitch + w];
                                // SAFETY: the CPU has the set; `rows` holds
                                // the tile's rows, `to` their places.
                                unsafe {
                                    I::copy_rows(rows.as_ptr(), to.as_mut_ptr(), w, nrows, pitch)
                                };
                            }
                            let width = (nrows - 1) * pitch + w;
                            (xstrip.as_ptr(), gstrip.as_ptr(), 0, 0, g_stride, width, 1)
                        }
                    } else {
                        debug_assert_eq!(g.shuffle, 1, "1x1 convolutions take no shuffle");
                        let xsrc = xb[grp * cin_g * hw + y0 * w..].as_ptr();
                        (xsrc, grad[gfirst..].as_ptr(), 0, 0, hw, nrows * w, 1)
                    };
                    let co_blocks = cout_g.div_ceil(co_block);
                    let tap_blocks = taps.div_ceil(nt_block);
                    for n in 0..co_blocks * tap_blocks {
                        // 1x1: each block of input channels goes through
                        // every block of output channels before the next
                        // (its runs stay in L1 while the gradient's stream
                        // by: 5-15% faster on the seed step's 96 -> 16
                        // shrink than the other way round). 3x3: a block of
                        // gradient rows goes through every tap, the taps of
                        // one input channel reading one strip.
                        let (cb, jb) = if g.k == 1 {
                            (n % co_blocks, n / co_blocks)
                        } else {
                            (n / tap_blocks, n % tap_blocks)
                        };
                        let (co0, j0) = (cb * co_block, jb * nt_block);
                        let co_valid = co_block.min(cout_g - co0);
                        let mut g_offs = [0isize; MAX_BLOCK];
                        for (c, o) in g_offs.iter_mut().enumerate().take(co_block) {
                            *o = ((co0 + c.min(co_valid - 1)) * gch) as isize;
                        }
                        let nt_valid = nt_block.min(taps - j0);
                        let mut offs = [0isize; MAX_BLOCK];
                        for (j, o) in offs.iter_mut().enumerate().take(nt_block) {
                            *o = x_offs[j0 + j.min(nt_valid - 1)];
                        }
                        let o = grp * cout_g + co0;
                        let a = Block {
                            x: xsrc,
                            x_offs: offs.as_ptr(),
                            x_pitch,
                            g: gsrc,
                            g_offs: g_offs.as_ptr(),
                            g_pitch,
                            width,
                            rows: runs,
                            out: acc[o * taps + j0..].as_mut_ptr(),
                            out_stride: taps,
                            co_valid,
                            nt_valid,
                        };
                        // SAFETY: the CPU has the set (the caller); the
                        // block reads the input strip (with its halo rows)
                        // or this tile's run of the group's input planes,
                        // and this tile's rows of the group's gradient
                        // planes, each run's last vector masked to the run;
                        // it writes its channels' taps of `acc`.
                        unsafe { I::run_grad(shape, &a) };
                    }
                    if with_bias {
                        for co in 0..cout_g {
                            let run = &grad[gfirst + co * hw..][..nrows * w];
                            // SAFETY: the CPU has the set; `run` is live.
                            acc[w_len + grp * cout_g + co] +=
                                unsafe { I::sum(run.as_ptr(), run.len()) };
                        }
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::direct::tests::ramp;
    use super::*;

    /// The definition in f64: the weight gradient then the bias gradient,
    /// each with the sum of the terms' magnitudes (the rounding scale).
    fn naive(x: &[f32], grad: &[f32], g: &ConvGeom, planes: Planes) -> Vec<(f64, f64)> {
        let (h, w, k, p) = (g.h as isize, g.w as isize, g.k, g.pad() as isize);
        let (cin_g, cout_g, hw) = (g.cin_g(), g.cout_g(), g.hw());
        let mut out = vec![(0.0, 0.0); g.w_len() + g.c_out];
        for b in 0..g.batch {
            for o in 0..g.c_out {
                let grp = o / cout_g;
                for yy in 0..h {
                    for xx in 0..w {
                        let gv =
                            f64::from(grad[b * planes.y_batch + o * hw + (yy * w + xx) as usize]);
                        let bias = &mut out[g.w_len() + o];
                        bias.0 += gv;
                        bias.1 += gv.abs();
                        for ci in 0..cin_g {
                            let c = g.in_channel(grp * cin_g + ci);
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = (yy + ky as isize - p, xx + kx as isize - p);
                                    if iy < 0 || iy >= h || ix < 0 || ix >= w {
                                        continue;
                                    }
                                    let xv = f64::from(
                                        x[b * planes.x_batch + c * hw + (iy * w + ix) as usize],
                                    );
                                    let e = &mut out[((o * cin_g + ci) * k + ky) * k + kx];
                                    e.0 += gv * xv;
                                    e.1 += (gv * xv).abs();
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The forward kernels' cases (1x1 and 3x3, groups, shuffles, widths
    /// around the 8- and 16-lane vectors, channel and tap counts that leave
    /// partial register blocks), and two of several rows and channels.
    fn cases() -> Vec<ConvGeom> {
        let mut cases = super::super::direct::tests::cases();
        for (batch, c_in, c_out, h, w, k) in [(2, 2, 5, 9, 25, 1), (3, 24, 16, 12, 12, 3)] {
            cases.push(ConvGeom {
                batch,
                c_in,
                c_out,
                h,
                w,
                k,
                groups: 1,
                shuffle: 1,
            });
        }
        cases
    }

    /// `run(x, grad, geometry, planes)` equals the definition on every
    /// case, images inside larger buffers (as the dense blocks hold them)
    /// and not.
    fn check(what: &str, run: impl Fn(&[f32], &[f32], &ConvGeom, Planes) -> Vec<f32>) {
        for g in cases() {
            for spare in [0, 3] {
                let planes = Planes {
                    x_batch: (g.c_in + spare) * g.hw(),
                    y_batch: (g.c_out + spare) * g.hw(),
                };
                let x = ramp(g.batch * planes.x_batch, 0.3);
                let grad = ramp(g.batch * planes.y_batch, 1.7);
                let got = run(&x, &grad, &g, planes);
                let want = naive(&x, &grad, &g, planes);
                assert_eq!(got.len(), want.len(), "{what} {g:?}");
                for (i, (&a, &(b, scale))) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (f64::from(a) - b).abs() <= 1e-5 * (1.0 + scale),
                        "{what} {g:?} spare {spare}: element {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// Whatever kernels this process selected, the weight gradient equals
    /// the definition (the GEMM path where the direct one does not apply).
    #[test]
    fn weight_gradient_matches_the_definition() {
        check("selected", |x, grad, g, planes| {
            super::super::kernels::conv_grad_weight_strided(x, grad, g, planes, true)
        });
    }

    /// Each direct kernel set this CPU has, with tiles of the default size
    /// and with many small tiles, equals the definition.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_available_direct_kernel_matches_the_definition() {
        use super::super::direct::x86::{Avx2, Avx512};
        for kernels in [Kernels::Avx512, Kernels::Avx2] {
            if !kernels.available() {
                eprintln!("{}: not on this CPU, not checked", kernels.name());
                continue;
            }
            for budget in [TILE_BUDGET, 200] {
                check(kernels.name(), |x, grad, g, planes| {
                    // SAFETY: the CPU has the set (`available`).
                    unsafe {
                        match kernels {
                            Kernels::Avx512 => {
                                x86::grad_weight::<Avx512>(x, grad, g, planes, true, budget)
                            }
                            _ => x86::grad_weight::<Avx2>(x, grad, g, planes, true, budget),
                        }
                    }
                });
            }
        }
    }

    /// Four-channel blocks where the channels fill them; two-channel ones
    /// for groups of 2 or 1 channel; the first shape on a tie.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn blocks_leave_the_fewest_products_empty() {
        use x86::pick_shape;
        let avx2 = [(4, 3), (2, 6)];
        assert_eq!(pick_shape(&avx2, 16, 144), 0);
        assert_eq!(pick_shape(&avx2, 4, 216), 0);
        assert_eq!(pick_shape(&avx2, 2, 72), 1);
        assert_eq!(pick_shape(&avx2, 1, 36), 1);
        assert_eq!(pick_shape(&avx2, 6, 12), 1, "8 x 12 against 6 x 12");
        assert_eq!(pick_shape(&avx2, 6, 9), 0, "8 x 9 against 6 x 12, a tie");
        assert_eq!(pick_shape(&[(4, 4), (2, 8)], 2, 144), 1);
    }

    #[test]
    fn tiles_fit_the_budget_and_split_the_rows_evenly() {
        let g = |h: usize, c: usize| ConvGeom {
            batch: 16,
            c_in: c,
            c_out: c,
            h,
            w: h,
            k: 3,
            groups: 1,
            shuffle: 1,
        };
        for (h, c) in [(32, 32), (64, 64), (64, 200), (200, 16), (7, 8)] {
            let g = g(h, c);
            let pitch = g.w + 2;
            let rows = tile_rows(&g, pitch, TILE_BUDGET);
            let per_row = c * pitch + c * g.w;
            assert!(
                rows == 1 || (rows + 2) * per_row <= TILE_BUDGET,
                "{h}x{h}, {c} channels: {rows} rows exceed the budget"
            );
            let count = h.div_ceil(rows);
            let last = h - (count - 1) * rows;
            assert!(
                last >= 1 && rows - last < count,
                "{h}x{h}, {c} channels: tiles of {rows} rows leave a last one of {last}"
            );
        }
        assert_eq!(
            tile_rows(&g(64, 64), 66, 1),
            1,
            "a tiny budget still makes one-row tiles"
        );
    }
}
