//! Direct (im2col-free) f32 convolution kernels for CPUs with AVX-512 or
//! AVX2 + FMA.
//!
//! Why: the im2col + GEMM forward copies every input value nine times
//! for a 3x3 convolution (memmove was 18% of a 1280x720 inference's
//! profile), and the `gemm` crate's stable build only has 256-bit (AVX2)
//! microkernels, half the width of the AVX-512 FMA units such CPUs have.
//! Here a block of output channels × pixel vectors stays in registers
//! while the input channels and the kernel taps stream past. A 3x3
//! convolution reads a zero-padded copy of its input rows (one copy
//! instead of nine, and no border tests in the inner loop); a 1x1
//! convolution reads the input planes as they are. The tiling, packing and
//! the block's arithmetic are written once, over a vector type: 16-lane
//! AVX-512 vectors (32 registers) or 8-lane AVX2 ones (16 registers), each
//! with its own register block. Which runs is [`selected`] once per
//! process; off x86-64, without AVX2 + FMA, or with `ESR_EA_NO_DIRECT=1`
//! the GEMM kernels run instead.
//!
//! The sums run over input channels, then taps, in a fixed order per
//! output value: results do not depend on the thread count or timing.

use super::geom::{ConvGeom, Planes};
use super::par::SendPtr;

/// The kernels that run the f32 forward convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// im2col + GEMM ([`super::kernels`]).
    Gemm,
    /// This module's kernels on 256-bit AVX2 + FMA vectors.
    Avx2,
    /// This module's kernels on 512-bit AVX-512F vectors.
    Avx512,
}

impl Kernels {
    /// Every choice, fastest first.
    pub const ALL: [Kernels; 3] = [Kernels::Avx512, Kernels::Avx2, Kernels::Gemm];

    /// The name `ESR_EA_DIRECT` takes for it.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Gemm => "gemm",
            Kernels::Avx2 => "avx2",
            Kernels::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Kernels::Gemm => true,
                Kernels::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
                Kernels::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernels::Gemm
        }
    }
}

/// The kernels this process runs, chosen once: the fastest this CPU has,
/// unless `ESR_EA_NO_DIRECT=1` (GEMM) or `ESR_EA_DIRECT=avx512|avx2|gemm`
/// asks for one (to compare them in one binary). A choice this CPU cannot
/// run, or an unknown name, is said on stderr once and the default runs.
pub fn selected() -> Kernels {
    static ON: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let wanted = std::env::var("ESR_EA_DIRECT").ok();
        let (kernels, warning) = choose(
            super::env_flag("ESR_EA_NO_DIRECT"),
            wanted.as_deref(),
            Kernels::available,
        );
        if let Some(w) = warning {
            eprintln!("esr-ea: {w}");
        }
        kernels
    })
}

/// Whether this module's kernels run the f32 forward convolutions (see
/// [`selected`]).
pub fn enabled() -> bool {
    selected() != Kernels::Gemm
}

/// [`selected`]'s rule, for given settings and CPU: the kernels and, when
/// the request cannot be honoured, why.
fn choose(
    no_direct: bool,
    wanted: Option<&str>,
    available: impl Fn(Kernels) -> bool,
) -> (Kernels, Option<String>) {
    let best = Kernels::ALL
        .into_iter()
        .find(|&k| available(k))
        .unwrap_or(Kernels::Gemm);
    if no_direct {
        return (Kernels::Gemm, None);
    }
    let Some(name) = wanted.map(str::trim).filter(|n| !n.is_empty()) else {
        return (best, None);
    };
    match Kernels::ALL.into_iter().find(|k| k.name() == name) {
        Some(k) if available(k) => (k, None),
        Some(k) => (
            best,
            Some(format!(
                "ESR_EA_DIRECT={}: this CPU cannot run it; using {}",
                k.name(),
                best.name()
            )),
        ),
        None => (
            best,
            Some(format!(
                "ESR_EA_DIRECT={name}: unknown kernels (allowed: avx512, avx2, gemm); using {}",
                best.name()
            )),
        ),
    }
}

/// The forward convolution of [`super::kernels::conv_forward_into`] with
/// this module's [`selected`] kernels; returns false (nothing done) where
/// they do not apply (GEMM selected; kernel sides other than 1 and 3).
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
    start: Start,
    out_planes: Option<&[usize]>,
    gate: Option<Gate<f32>>,
) -> bool {
    if !matches!(g.k, 1 | 3) {
        return false;
    }
    // SAFETY (both arms): `selected` only picks kernels the CPU has; the
    // caller vouches for the buffers.
    #[cfg(target_arch = "x86_64")]
    match selected() {
        Kernels::Avx512 => unsafe {
            x86::conv::<x86::Avx512>(x, weight, bias, g, relu, y, planes, start, out_planes, gate);
            true
        },
        Kernels::Avx2 => unsafe {
            x86::conv::<x86::Avx2>(x, weight, bias, g, relu, y, planes, start, out_planes, gate);
            true
        },
        Kernels::Gemm => false,
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, weight, bias, relu, y, planes, start, out_planes, gate);
        false
    }
}

/// What a direct convolution's output starts from before the
/// convolution is added to it.
#[derive(Clone, Copy)]
pub(super) enum Start {
    /// The bias (or zero): a plain convolution.
    Bias,
    /// What the output holds: accumulate in place.
    Output,
    /// Another buffer laid out as the output (the same [`Planes`]),
    /// which is read, not written: `y = init + conv` without first
    /// copying `init` into `y`.
    From(SendPtr<f32>),
}

/// The gradient through a ReLU, applied as a convolution's sums are
/// stored: output planes `first..end` (stored numbering) keep a sum only
/// where the ReLU's output `by`, a buffer laid out as the output (the same
/// [`Planes`]), is positive, else get 0. A dense block's backward thus
/// masks each layer's output gradient as the last input gradient added
/// into it is written, instead of in a pass of its own.
#[derive(Clone, Copy)]
pub struct Gate<T> {
    /// The ReLU's output, laid out as the convolution's output.
    pub by: SendPtr<T>,
    /// The first gated plane.
    pub first: usize,
    /// One past the last gated plane.
    pub end: usize,
}

/// Weights reordered for the kernels: for each group and each block of at
/// most `max_co` output channels, `[cin_g][k·k][block]`, the block's
/// channels side by side. Block `(grp, co0)` starts at `(grp·cout_g +
/// co0)·cin_g·k·k`, where the plain layout has its first channel.
fn pack_weights(weight: &[f32], g: &ConvGeom, max_co: usize) -> Vec<f32> {
    let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.k * g.k);
    let mut packed = vec![0f32; weight.len()];
    for grp in 0..g.groups {
        for (co0, cnt) in co_blocks(cout_g, max_co) {
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
/// cut into: full blocks of `min(cout, max_co)`, then the rest.
fn co_blocks(cout: usize, max_co: usize) -> impl Iterator<Item = (usize, usize)> {
    let step = cout.clamp(1, max_co);
    (0..cout)
        .step_by(step)
        .map(move |co0| (co0, step.min(cout - co0)))
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    use super::super::geom::{ConvGeom, Planes};
    use super::super::par::{self, SendPtr};
    use super::{co_blocks, pack_weights, Start};

    /// Floats of zero-padded input rows per thread (512 KiB: a tile's rows
    /// of every input channel of a group stay in the core's L2 cache, and
    /// tiles are tall enough that the two halo rows each copies are few).
    const STRIP_BUDGET: usize = 128 * 1024;

    /// Floats of the copy a 1x1 convolution reads a run of pixels from
    /// (128 KiB: inside L2 beside the output's lines).
    const RUN_BUDGET: usize = 32 * 1024;

    /// Floats in a cache line (and in the widest vector).
    const LINE: usize = 16;

    /// Whether planes of `hw` floats lie a multiple of 2 KiB apart and so
    /// share one or two of L1's 64 sets (32x32, 64x64, 640x360): a block
    /// that reads one vector from each of many channels then keeps few of
    /// them in L1 (nor, past ~128 channels, in L2) for the next block, so
    /// the 1x1 kernels read copies whose channels are a cache line more
    /// than a run of pixels apart. (The weight gradient's blocks read a
    /// few channels each, along whole runs: copies there measured 5-10%
    /// slower.)
    fn planes_share_sets(hw: usize) -> bool {
        (hw * std::mem::size_of::<f32>()) % 2048 == 0
    }

    /// Pixels per run that a 1x1 convolution of `cin_g` input channels
    /// copies: whole cache lines that fit [`RUN_BUDGET`], at least one
    /// line, at most a work item's `item_px` (which many threads on a
    /// small image make shorter than a line).
    pub(super) fn copy_run(cin_g: usize, item_px: usize) -> usize {
        (RUN_BUDGET / cin_g.max(1) / LINE * LINE)
            .max(LINE)
            .min(item_px)
            .max(1)
    }

    /// Work items wanted per thread, so a late thread has others to help it.
    const ITEMS_PER_THREAD: usize = 4;

    /// Pixel vectors per register block, at most (any set).
    const MAX_NB: usize = 8;

    /// Output channels per register block, at most (any set).
    const MAX_CO: usize = 8;

    /// One register block's operands.
    pub(in crate::ops) struct Block {
        /// The input at this block's first pixel, channel 0, tap offset 0.
        src: *const f32,
        /// Offset of each of the block's vectors from `src` (the first
        /// `NB`; `v·LANES` within a row, more where the block goes on in
        /// the next row). The output's vectors follow each other.
        src_offs: [usize; MAX_NB],
        /// Elements from one input channel to the next.
        ch_stride: usize,
        /// Offset of each kernel tap from a pixel's position in `src`.
        taps: *const isize,
        ntaps: usize,
        cin: usize,
        /// Packed weights of the block's channels, `[cin][taps][CO]`.
        weights: *const f32,
        /// The output at this block's first pixel, channel offset 0.
        dst: *mut f32,
        /// Offset of each of the block's output channels' planes from
        /// `dst` (the first `CO`).
        dst_offs: [usize; MAX_CO],
        /// The block's biases (`CO` of them), or none.
        bias: Option<*const f32>,
        /// Start from what `init` holds (at `dst`'s offsets) instead of
        /// the bias.
        accumulate: bool,
        /// `dst` itself, or the pixel of another buffer laid out as it.
        init: *const f32,
        relu: bool,
        /// Bit `c`: channel `c`'s sums are gated ([`super::Gate`]) by the
        /// buffer at `gate`, laid out as the output (`gate` at `dst`'s
        /// pixel, like `init`).
        gated: u32,
        gate: *const f32,
        /// Lanes of the block's last vector that are inside the image
        /// (1 to the vector's lanes; all of them unless the block is one
        /// vector wide).
        tail: usize,
    }

    /// The vector operations a register block needs, and the block shapes
    /// that fit a register file. The operations are `#[inline(always)]`
    /// and run inside the `#[target_feature]` entry ([`Isa::run`]'s
    /// blocks), so their intrinsics inline there.
    pub(in crate::ops) trait Isa {
        type V: Copy;
        /// Which lanes of a vector to load or store.
        type Mask: Copy;
        /// f32 lanes of a vector.
        const LANES: usize;
        /// Output channels per register block, at most.
        const MAX_CO: usize;
        /// Pixel vectors per register block of `co` channels: `co·nb`
        /// accumulators, the `nb` input vectors and a weight in registers.
        fn wide_nb(co: usize) -> usize;
        /// Runs [`block`] for `co` channels and `nb` (1 to `wide_nb(co)`)
        /// vectors, compiled for this instruction set; `rows`: the
        /// vectors are not all in one row (`Block::src_offs` says where).
        ///
        /// # Safety
        /// As [`block`].
        unsafe fn run(co: usize, nb: usize, rows: bool, a: &Block);
        /// [`copy_rows`], compiled for this set.
        ///
        /// # Safety
        /// As [`copy_rows`].
        unsafe fn copy_rows(from: *const f32, to: *mut f32, w: usize, rows: usize, pitch: usize);
        /// The first `tail` lanes (1 to `LANES`).
        fn mask(tail: usize) -> Self::Mask;
        fn zero() -> Self::V;
        fn splat(x: f32) -> Self::V;
        /// # Safety
        /// The CPU has the set; `p` readable for `LANES` floats.
        unsafe fn load(p: *const f32) -> Self::V;
        /// # Safety
        /// The CPU has the set; `p` readable where `m` is set.
        unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self::V;
        /// # Safety
        /// The CPU has the set; `p` writable where `m` is set.
        unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self::V);
        /// `a·b + c`.
        fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
        fn max0(v: Self::V) -> Self::V;
        /// `v` where `gate > 0`, else 0 (lane by lane).
        fn where_positive(gate: Self::V, v: Self::V) -> Self::V;
        /// The sum of the lanes (in a fixed order of this set's own).
        fn hsum(v: Self::V) -> f32;
    }

    /// `dst[co][px] = [dst +] bias[co] + Σ_ci Σ_t weights · src`, for `CO`
    /// channels × `NB` vectors of pixels, accumulated in registers.
    ///
    /// # Safety
    /// The CPU has `I`'s instruction set, and this is inlined into a
    /// function compiled for it; every address the block reads
    /// (masked-off lanes excepted) and writes must be inside live buffers.
    #[inline(always)]
    unsafe fn block<I: Isa, const CO: usize, const NB: usize, const ROWS: bool>(a: &Block) {
        // Only one-vector blocks hold a partial vector ([`row_pass`]): wide
        // ones then need no mask register (AVX2 has none to spare).
        debug_assert!(NB == 1 || a.tail == I::LANES);
        let last = I::mask(if NB == 1 { a.tail } else { I::LANES });
        // Within a row the vectors' offsets are constants of the code;
        // only blocks that go on into the next row read them.
        let offs: [usize; NB] =
            std::array::from_fn(|v| if ROWS { a.src_offs[v] } else { v * I::LANES });
        let mut acc = [[I::zero(); NB]; CO];
        for (co, row) in acc.iter_mut().enumerate() {
            for (v, r) in row.iter_mut().enumerate() {
                if a.accumulate {
                    let p = a.init.add(a.dst_offs[co] + v * I::LANES);
                    *r = if v + 1 == NB {
                        I::load_masked(p, last)
                    } else {
                        I::load(p)
                    };
                } else if let Some(b) = a.bias {
                    *r = I::splat(*b.add(co));
                }
            }
        }
        let mut w = a.weights;
        for ci in 0..a.cin {
            let base = a.src.add(ci * a.ch_stride);
            for t in 0..a.ntaps {
                let p = base.offset(*a.taps.add(t));
                let mut inp = [I::zero(); NB];
                for (v, x) in inp.iter_mut().enumerate() {
                    let pv = p.add(offs[v]);
                    *x = if v + 1 == NB {
                        I::load_masked(pv, last)
                    } else {
                        I::load(pv)
                    };
                }
                for (co, row) in acc.iter_mut().enumerate() {
                    let wv = I::splat(*w.add(co));
                    for (r, x) in row.iter_mut().zip(&inp) {
                        *r = I::fmadd(*x, wv, *r);
                    }
                }
                w = w.add(CO);
            }
        }
        let full = I::mask(I::LANES);
        for (co, row) in acc.iter().enumerate() {
            let gated = a.gated & (1 << co) != 0;
            for (v, r) in row.iter().enumerate() {
                let mut out = if a.relu { I::max0(*r) } else { *r };
                let m = if v + 1 == NB { last } else { full };
                let p = a.dst.add(a.dst_offs[co] + v * I::LANES);
                if gated {
                    let y = a.gate.add(a.dst_offs[co] + v * I::LANES);
                    out = I::where_positive(I::load_masked(y, m), out);
                }
                I::store_masked(p, m, out);
            }
        }
    }

    /// Copies `rows` rows of `w` floats, contiguous at `from`, to `pitch`
    /// floats apart at `to`: a strip's rows in one call, in vector moves
    /// rather than a `memcpy` call per row (strip copies were 4% of the
    /// seed step's backward and 13% of its forward; grouped 3x3 weight
    /// gradients +2-6%, interleaved on cold data).
    ///
    /// # Safety
    /// The CPU has `I`'s instruction set and this is inlined into a
    /// function compiled for it; `from` readable for `rows · w` floats, `to`
    /// writable for `(rows - 1) · pitch + w`.
    #[inline(always)]
    pub(in crate::ops) unsafe fn copy_rows<I: Isa>(
        from: *const f32,
        to: *mut f32,
        w: usize,
        rows: usize,
        pitch: usize,
    ) {
        let lanes = I::LANES;
        let whole = w / lanes;
        let tail = w - whole * lanes;
        let (full, last) = (I::mask(lanes), I::mask(tail.max(1)));
        for r in 0..rows {
            let (f, t) = (from.add(r * w), to.add(r * pitch));
            for v in 0..whole {
                I::store_masked(t.add(v * lanes), full, I::load(f.add(v * lanes)));
            }
            if tail > 0 {
                let at = whole * lanes;
                I::store_masked(t.add(at), last, I::load_masked(f.add(at), last));
            }
        }
    }

    /// Fills a 3x3 strip's rows `0..nrows + 2` (from column 1, `pitch`
    /// apart) with rows `y0 - 1 ..= y0 + nrows` of the `h` × `w` `plane`:
    /// those inside the image copied, the others (above the first, below
    /// the last) zero. Columns 0 and `w + 1..` are left as they are.
    ///
    /// # Safety
    /// The CPU has `I`'s instruction set; `plane` readable for `h · w`
    /// floats; `y0 + nrows <= h`, `pitch > w`.
    pub(in crate::ops) unsafe fn fill_strip<I: Isa>(
        plane: *const f32,
        strip: &mut [f32],
        (y0, nrows): (usize, usize),
        (h, w): (usize, usize),
        pitch: usize,
    ) {
        let first = y0.saturating_sub(1);
        let end = (y0 + nrows + 1).min(h);
        let skip = first + 1 - y0;
        let strip = &mut strip[..(nrows + 2) * pitch];
        for r in (0..skip).chain(skip + end - first..nrows + 2) {
            strip[r * pitch + 1..][..w].fill(0.0);
        }
        let to = &mut strip[skip * pitch + 1..][..(end - first - 1) * pitch + w];
        // SAFETY: rows first..end of the plane into their places `pitch`
        // apart; the CPU has the set (the caller).
        unsafe { I::copy_rows(plane.add(first * w), to.as_mut_ptr(), w, end - first, pitch) };
    }

    /// The [`Isa`] operations that are one intrinsic each, alike for every
    /// vector width.
    macro_rules! plain_ops {
        ($v:ty, $zero:ident, $set1:ident, $load:ident, $fmadd:ident, $max:ident) => {
            #[inline(always)]
            fn zero() -> $v {
                // SAFETY: only ever inlined into code compiled for the
                // set (see `Isa`).
                unsafe { $zero() }
            }
            #[inline(always)]
            fn splat(x: f32) -> $v {
                // SAFETY: as `zero`.
                unsafe { $set1(x) }
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> $v {
                // SAFETY: forwarded to the caller.
                unsafe { $load(p) }
            }
            #[inline(always)]
            fn fmadd(a: $v, b: $v, c: $v) -> $v {
                // SAFETY: as `zero`.
                unsafe { $fmadd(a, b, c) }
            }
            #[inline(always)]
            fn max0(v: $v) -> $v {
                // SAFETY: as `zero`.
                unsafe { $max(v, $zero()) }
            }
        };
    }

    /// [`Isa::run`] for `$isa`: [`block`] compiled for `$features`, for
    /// `$c` channels by each of the `$n` vector counts (1 to
    /// [`Isa::wide_nb`]: a run of vectors shorter than a wide block, such
    /// as a 32-pixel row in 16-lane vectors, still gets as many
    /// accumulators as it has vectors).
    macro_rules! run_blocks {
        ($isa:ty, $features:literal, $($c:literal => [$($n:literal),*]),*) => {
            unsafe fn copy_rows(from: *const f32, to: *mut f32, w: usize, rows: usize, pitch: usize) {
                #[target_feature(enable = $features)]
                unsafe fn entry(f: *const f32, t: *mut f32, w: usize, rows: usize, pitch: usize) {
                    // SAFETY: forwarded to the caller; compiled for the set.
                    unsafe { copy_rows::<$isa>(f, t, w, rows, pitch) }
                }
                // SAFETY: forwarded to the caller.
                unsafe { entry(from, to, w, rows, pitch) }
            }
            unsafe fn run(co: usize, nb: usize, rows: bool, a: &Block) {
                #[target_feature(enable = $features)]
                unsafe fn entry<const CO: usize, const NB: usize, const ROWS: bool>(a: &Block) {
                    // SAFETY: forwarded to the caller; compiled for the set.
                    unsafe { block::<$isa, CO, NB, ROWS>(a) }
                }
                // SAFETY: forwarded to the caller.
                unsafe {
                    match (co, nb, rows && nb > 1) {
                        $($(
                            ($c, $n, false) => entry::<$c, $n, false>(a),
                            ($c, $n, true) => entry::<$c, $n, true>(a),
                        )*)*
                        _ => unreachable!(
                            "{} register blocks hold 1 to {} channels by 1 to wide_nb vectors, not {co} by {nb}",
                            $features,
                            Self::MAX_CO
                        ),
                    }
                }
            }
        };
    }

    /// 512-bit vectors, 32 registers.
    pub(in crate::ops) struct Avx512;

    impl Isa for Avx512 {
        type V = __m512;
        type Mask = u16;
        const LANES: usize = 16;
        const MAX_CO: usize = 8;
        fn wide_nb(co: usize) -> usize {
            match co {
                1 | 2 => 8,
                3 | 4 => 6,
                5 | 6 => 4,
                _ => 3,
            }
        }
        run_blocks!(Avx512, "avx512f",
            1 => [1, 2, 3, 4, 5, 6, 7, 8], 2 => [1, 2, 3, 4, 5, 6, 7, 8],
            3 => [1, 2, 3, 4, 5, 6], 4 => [1, 2, 3, 4, 5, 6],
            5 => [1, 2, 3, 4], 6 => [1, 2, 3, 4],
            7 => [1, 2, 3], 8 => [1, 2, 3]);
        #[inline(always)]
        fn mask(tail: usize) -> u16 {
            if tail >= 16 {
                0xFFFF
            } else {
                (1u16 << tail) - 1
            }
        }
        plain_ops!(
            __m512,
            _mm512_setzero_ps,
            _mm512_set1_ps,
            _mm512_loadu_ps,
            _mm512_fmadd_ps,
            _mm512_max_ps
        );
        #[inline(always)]
        fn where_positive(gate: __m512, v: __m512) -> __m512 {
            // SAFETY: only ever inlined into AVX-512 code (see `Isa`).
            unsafe {
                _mm512_maskz_mov_ps(
                    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(gate, _mm512_setzero_ps()),
                    v,
                )
            }
        }
        #[inline(always)]
        fn hsum(v: __m512) -> f32 {
            // SAFETY: only ever inlined into AVX-512 code (see `Isa`).
            unsafe { _mm512_reduce_add_ps(v) }
        }
        #[inline(always)]
        unsafe fn load_masked(p: *const f32, m: u16) -> __m512 {
            // SAFETY: forwarded to the caller.
            unsafe { _mm512_maskz_loadu_ps(m, p) }
        }
        #[inline(always)]
        unsafe fn store_masked(p: *mut f32, m: u16, v: __m512) {
            // SAFETY: forwarded to the caller.
            unsafe { _mm512_mask_storeu_ps(p, m, v) }
        }
    }

    /// 256-bit vectors, 16 registers: blocks of at most 6 channels x 2
    /// vectors (12 accumulators, 2 inputs, a weight). Blocks that fill all
    /// 16 registers (4 x 3, 3 x 4) made LLVM shuffle and spill accumulators
    /// in the inner loop: 4 x 3 ran 25-35% slower than 6 x 2 (1280x720
    /// inference, Zen 5 with AVX-512 off).
    pub(in crate::ops) struct Avx2;

    impl Isa for Avx2 {
        type V = __m256;
        /// `None`: all lanes (a plain load or store, cheaper than a masked one).
        type Mask = Option<__m256i>;
        const LANES: usize = 8;
        const MAX_CO: usize = 6;
        fn wide_nb(co: usize) -> usize {
            match co {
                1 => 7,
                2 => 4,
                3 => 3,
                _ => 2,
            }
        }
        run_blocks!(Avx2, "avx2,fma",
            1 => [1, 2, 3, 4, 5, 6, 7], 2 => [1, 2, 3, 4], 3 => [1, 2, 3],
            4 => [1, 2], 5 => [1, 2], 6 => [1, 2]);
        #[inline(always)]
        fn mask(tail: usize) -> Option<__m256i> {
            // SAFETY: only ever inlined into AVX2 code (see `Isa`).
            (tail < 8).then(|| unsafe {
                _mm256_cmpgt_epi32(
                    _mm256_set1_epi32(tail as i32),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                )
            })
        }
        plain_ops!(
            __m256,
            _mm256_setzero_ps,
            _mm256_set1_ps,
            _mm256_loadu_ps,
            _mm256_fmadd_ps,
            _mm256_max_ps
        );
        #[inline(always)]
        fn where_positive(gate: __m256, v: __m256) -> __m256 {
            // SAFETY: only ever inlined into AVX2 code (see `Isa`).
            unsafe { _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_GT_OQ>(gate, _mm256_setzero_ps())) }
        }
        #[inline(always)]
        fn hsum(v: __m256) -> f32 {
            // SAFETY: only ever inlined into AVX2 code (see `Isa`).
            unsafe {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
            }
        }
        #[inline(always)]
        unsafe fn load_masked(p: *const f32, m: Option<__m256i>) -> __m256 {
            // SAFETY: forwarded to the caller.
            unsafe {
                match m {
                    None => _mm256_loadu_ps(p),
                    Some(m) => _mm256_maskload_ps(p, m),
                }
            }
        }
        #[inline(always)]
        unsafe fn store_masked(p: *mut f32, m: Option<__m256i>, v: __m256) {
            // SAFETY: forwarded to the caller.
            unsafe {
                match m {
                    None => _mm256_storeu_ps(p, v),
                    Some(m) => _mm256_maskstore_ps(p, m, v),
                }
            }
        }
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
        /// Where each of this group's output channels' planes starts,
        /// counted from the output's pixel (each image's first plane).
        out_offs: &'a [usize],
        /// Whether each of this group's output channels is gated.
        gated: &'a [bool],
        accumulate: bool,
        relu: bool,
    }

    /// Every output channel of one group over `rows` rows of `w` pixels:
    /// `src` at the first row's first pixel (channel 0), the next row
    /// `src_pitch` further; `dst` at the first pixel of the image's first
    /// plane (`Pass::out_offs` gives each channel's), rows following each
    /// other; `init` likewise, in the buffer the sums start from when
    /// accumulating (`dst` itself, or another laid out as it).
    /// Where `w` is whole vectors the rows are one run of vectors, so a
    /// register block may end a row and begin the next (a 32-pixel row is
    /// two 16-lane vectors, and a block wants three); otherwise each row
    /// is a run whose partial last vector gets a block of its own.
    ///
    /// # Safety
    /// As [`block`], for every row.
    unsafe fn row_pass<I: Isa>(
        p: &Pass,
        src: *const f32,
        src_pitch: usize,
        (dst, init, gate): (*mut f32, *const f32, *const f32),
        w: usize,
        rows: usize,
    ) {
        let lanes = I::LANES;
        if w % lanes == 0 {
            // SAFETY: forwarded to the caller.
            unsafe {
                vector_run::<I>(
                    p,
                    src,
                    src_pitch,
                    w / lanes,
                    (dst, init, gate),
                    rows * w / lanes,
                    lanes,
                )
            };
            return;
        }
        let (vecs, tail) = (w.div_ceil(lanes), w - (w.div_ceil(lanes) - 1) * lanes);
        for r in 0..rows {
            // SAFETY: forwarded to the caller.
            unsafe {
                vector_run::<I>(
                    p,
                    src.add(r * src_pitch),
                    0,
                    vecs,
                    (dst.add(r * w), init.add(r * w), gate.wrapping_add(r * w)),
                    vecs,
                    tail,
                )
            };
        }
    }

    /// Every output channel of one group over `count` vectors: vector `u`
    /// reads `src + (u / per_row)·src_pitch + (u % per_row)·LANES` and
    /// writes `dst + u·LANES` (starting from `init + u·LANES` when
    /// accumulating); the last one holds `tail` lanes.
    ///
    /// Each block of output channels goes over every vector before the
    /// next block starts: its output planes are then a few sequential
    /// streams, which the prefetchers follow, and its input comes from
    /// L2. Chunks of pixels going through every channel block in turn
    /// (their input read from L1) wrote one line in each of many planes,
    /// which often lie a power of two apart and share cache sets: a 1x1
    /// input gradient adding 16 channels into 128 ran at 20-50 GFLOP/s
    /// that way, at 55-64 this way (3x3: 82-92 -> 99-109 for such adds,
    /// +3% where the output has few channels).
    ///
    /// # Safety
    /// As [`block`], for every vector.
    #[allow(clippy::too_many_arguments)]
    unsafe fn vector_run<I: Isa>(
        p: &Pass,
        src: *const f32,
        src_pitch: usize,
        per_row: usize,
        (dst, init, gate): (*mut f32, *const f32, *const f32),
        count: usize,
        tail: usize,
    ) {
        let lanes = I::LANES;
        // Vectors before the partial one (if any), which goes alone.
        let whole = if tail == lanes { count } else { count - 1 };
        for (co0, cnt) in co_blocks(p.cout, I::MAX_CO) {
            let nbw = I::wide_nb(cnt);
            debug_assert!(nbw <= MAX_NB);
            // Built once and updated in place: copying a block with its
            // offsets per call cost more than the call itself.
            let mut a = Block {
                src,
                src_offs: [0; MAX_NB],
                ch_stride: p.ch_stride,
                taps: p.taps.as_ptr(),
                ntaps: p.ntaps,
                cin: p.cin,
                weights: p.weights[co0 * p.cin * p.ntaps..].as_ptr(),
                dst,
                dst_offs: std::array::from_fn(|c| p.out_offs[co0 + c.min(cnt - 1)]),
                bias: p.bias.map(|b| b[co0..].as_ptr()),
                accumulate: p.accumulate,
                init,
                relu: p.relu,
                gated: (0..cnt).filter(|&c| p.gated[co0 + c]).map(|c| 1 << c).sum(),
                gate,
                tail: lanes,
            };
            // Vector u's row and column, counted along (no division per
            // block: this runs once per few hundred FMAs).
            let (mut row, mut col) = (0, 0);
            let mut u = 0;
            while u < count {
                let nb = if u < whole { nbw.min(whole - u) } else { 1 };
                let first = row * src_pitch + col * lanes;
                for off in a.src_offs.iter_mut().take(nb) {
                    *off = row * src_pitch + col * lanes - first;
                    col += 1;
                    if col == per_row {
                        (row, col) = (row + 1, 0);
                    }
                }
                let rows = a.src_offs[nb - 1] != (nb - 1) * lanes;
                // SAFETY: forwarded to the caller; `tail` masks the lanes
                // past the run's end.
                unsafe {
                    a.src = src.add(first);
                    a.dst = dst.add(u * lanes);
                    a.init = init.add(u * lanes);
                    a.gate = gate.wrapping_add(u * lanes);
                    a.tail = if u < whole { lanes } else { tail };
                    I::run(cnt, nb, rows, &a);
                }
                u += nb;
            }
        }
    }

    /// See [`super::conv_forward_f32`], on `I`'s vectors. `out_planes`:
    /// the stored plane of each output channel (none: its own).
    ///
    /// # Safety
    /// The CPU has `I`'s instruction set; buffers as
    /// [`super::super::kernels::conv_forward_into`].
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn conv<I: Isa>(
        x: *const f32,
        weight: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
        relu: bool,
        y: SendPtr<f32>,
        planes: Planes,
        start: Start,
        out_planes: Option<&[usize]>,
        gate: Option<super::Gate<f32>>,
    ) {
        let accumulate = !matches!(start, Start::Bias);
        // The pixel the sums of image `b`'s pixel `px` (of each plane)
        // start from.
        let init = |b: usize, px: usize, dst: *mut f32| match start {
            // SAFETY: the caller vouches for `init` laid out as `y`.
            Start::From(p) => unsafe { p.add(b * planes.y_batch + px).cast_const() },
            _ => dst.cast_const(),
        };
        if g.batch == 0 || g.hw() == 0 || g.c_out == 0 {
            return;
        }
        let (h, w, hw, lanes) = (g.h, g.w, g.hw(), I::LANES);
        let out_offs: Vec<usize> = match out_planes {
            Some(to) => to.iter().map(|&c| c * hw).collect(),
            None => (0..g.c_out).map(|c| c * hw).collect(),
        };
        let gated: Vec<bool> = match gate {
            Some(gt) => out_offs
                .iter()
                .map(|&o| (gt.first..gt.end).contains(&(o / hw)))
                .collect(),
            None => vec![false; g.c_out],
        };
        // The gating buffer's pixel `px` of image `b` (a null pointer, never
        // read, where nothing is gated).
        let gate_at = |b: usize, px: usize| match gate {
            // SAFETY: the caller vouches for `by` laid out as `y`.
            Some(gt) => unsafe { gt.by.add(b * planes.y_batch + px).cast_const() },
            None => std::ptr::null(),
        };
        let (cin_g, cout_g, kk) = (g.cin_g(), g.cout_g(), g.k * g.k);
        let packed = pack_weights(weight, g, I::MAX_CO);
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
            out_offs: &out_offs[grp * cout_g..(grp + 1) * cout_g],
            gated: &gated[grp * cout_g..(grp + 1) * cout_g],
            accumulate,
            relu,
        };
        if g.k == 1 {
            debug_assert_eq!(g.shuffle, 1, "1x1 convolutions take no shuffle");
            let tiling = g.tiling(threads);
            // Runs of pixels read from copies where the planes share
            // cache sets (the seed step's 32x32 1x1 convolutions: 38-46
            // -> 56-63 GFLOP/s; at 16x16, where they do not, a copy cost
            // a little more than it saved).
            let aliased = planes_share_sets(hw);
            let run = if aliased {
                copy_run(cin_g, tiling.rows * w)
            } else {
                tiling.rows * w
            };
            let pitch = if aliased {
                run.next_multiple_of(LINE) + LINE
            } else {
                0
            };
            par::for_each(
                g.batch * tiling.count,
                || vec![0f32; cin_g * pitch],
                |strip, item| {
                    let (b, t) = (item / tiling.count, item % tiling.count);
                    let y0 = t * tiling.rows;
                    let n = tiling.rows.min(h - y0) * w;
                    for grp in 0..g.groups {
                        for s in (0..n).step_by(run) {
                            let len = run.min(n - s);
                            let px = y0 * w + s;
                            // SAFETY: pixels px..px+len of the group's input
                            // planes of image b.
                            let src = unsafe { x.add(b * planes.x_batch + grp * cin_g * hw + px) };
                            let (src, ch_stride) = if aliased {
                                for ci in 0..cin_g {
                                    // SAFETY: as above; the strip holds
                                    // `pitch` (≥ len) floats per channel.
                                    unsafe {
                                        std::ptr::copy_nonoverlapping(
                                            src.add(ci * hw).cast_const(),
                                            strip.as_mut_ptr().add(ci * pitch),
                                            len,
                                        );
                                    }
                                }
                                (strip.as_ptr(), pitch)
                            } else {
                                (src.cast_const(), hw)
                            };
                            let p = pass(grp, ch_stride, [0; 9]);
                            // SAFETY: `src` holds this run of every input
                            // channel of the group, `ch_stride` apart; the
                            // output's pixels px.. of image b are this item's.
                            unsafe {
                                let dst = y.add(b * planes.y_batch + px);
                                let at = (dst, init(b, px, dst), gate_at(b, px));
                                row_pass::<I>(&p, src, 0, at, len, 1);
                            }
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
        let pw = w.div_ceil(lanes) * lanes + lanes;
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
                        // SAFETY: channel c of image b; rows y0..y0+nrows
                        // are inside it; the CPU has the set.
                        unsafe {
                            let plane = x.add(b * planes.x_batch + c * hw).cast_const();
                            let rows = &mut strip[ci * ch_stride..];
                            fill_strip::<I>(plane, rows, (y0, nrows), (h, w), pw);
                        }
                    }
                    let p = pass(grp, ch_stride, taps);
                    // SAFETY: the strip holds rows 0..nrows+2 (plus the
                    // zero columns and the slack the last vector reads);
                    // output rows y0..y0+nrows of this group are this item's.
                    unsafe {
                        let dst = y.add(b * planes.y_batch + y0 * w);
                        let at = (dst, init(b, y0 * w, dst), gate_at(b, y0 * w));
                        row_pass::<I>(&p, strip.as_ptr(), pw, at, w, nrows);
                    }
                }
            },
        );
    }
}

#[cfg(test)]
pub(super) mod tests {
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

    pub(in crate::ops) fn ramp(n: usize, seed: f32) -> Vec<f32> {
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

    /// A 1x1 convolution's copied runs: whole lines within the budget, a
    /// line for very many channels, never longer than the work item (a
    /// 16-thread machine splits a 512-pixel image into 8-pixel items).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn copied_runs_fit_the_budget_and_the_item() {
        use x86::copy_run;
        assert_eq!(copy_run(160, 1024), 192);
        assert_eq!(copy_run(16, 1024), 1024);
        assert_eq!(copy_run(100_000, 1024), 16);
        assert_eq!(copy_run(4, 8), 8);
        assert_eq!(copy_run(0, 0), 1);
    }

    /// The cases the kernels are checked on: 1x1 and 3x3, groups,
    /// shuffles, widths around the 8- and 16-lane vectors.
    pub(in crate::ops) fn cases() -> Vec<ConvGeom> {
        [
            // (batch, c_in, c_out, h, w, k, groups, shuffle)
            (2, 4, 8, 5, 7, 3, 1, 1),
            (1, 8, 4, 3, 17, 3, 2, 2),
            (1, 12, 24, 4, 33, 3, 4, 3),
            (2, 6, 3, 6, 16, 3, 1, 1),
            (1, 5, 9, 2, 50, 1, 1, 1),
            (3, 16, 16, 1, 1, 3, 4, 4),
            (1, 3, 20, 7, 40, 3, 1, 1),
            (1, 40, 6, 3, 21, 1, 2, 1),
            (1, 7, 13, 3, 9, 3, 1, 1),
            (1, 2, 5, 2, 25, 1, 1, 1),
            // Whole-vector rows: register blocks that go on into the next
            // row, of every channel count up to two blocks.
            (2, 5, 16, 5, 24, 3, 1, 1),
            (1, 9, 13, 4, 32, 3, 1, 1),
            (1, 4, 1, 9, 8, 3, 1, 1),
            (1, 6, 7, 3, 16, 3, 1, 1),
            (1, 8, 11, 5, 48, 3, 1, 1),
            (1, 10, 14, 3, 64, 1, 1, 1),
            // 1x1 over planes a multiple of 2 KiB apart: read from a
            // copy, in runs shorter than a row (160 channels) or not.
            (1, 160, 9, 2, 256, 1, 1, 1),
            (2, 64, 12, 4, 128, 1, 2, 1),
        ]
        .into_iter()
        .map(|(batch, c_in, c_out, h, w, k, groups, shuffle)| ConvGeom {
            batch,
            c_in,
            c_out,
            h,
            w,
            k,
            groups,
            shuffle,
        })
        .collect()
    }

    /// `run(x, weight, bias, geometry, relu, y, accumulate)` equals the
    /// definition on every case: with and without bias and ReLU, and
    /// accumulating into what the output holds.
    fn check(
        what: &str,
        run: impl Fn(&[f32], &[f32], Option<&[f32]>, &ConvGeom, bool, &mut [f32], bool),
    ) {
        for g in cases() {
            let x = ramp(g.x_len(), 0.3);
            let wt = ramp(g.w_len(), 1.1);
            let bias = ramp(g.c_out, 2.0);
            for (b, relu) in [
                (None, false),
                (Some(&bias[..]), true),
                (Some(&bias[..]), false),
            ] {
                let mut got = vec![f32::NAN; g.y_len()];
                run(&x, &wt, b, &g, relu, &mut got, false);
                close(&got, &naive(&x, &wt, b, &g, relu), &format!("{what} {g:?}"));
            }
            let start = ramp(g.y_len(), 0.9);
            let mut acc = start.clone();
            run(&x, &wt, None, &g, false, &mut acc, true);
            let want: Vec<f64> = naive(&x, &wt, None, &g, false)
                .iter()
                .zip(&start)
                .map(|(a, &s)| a + f64::from(s))
                .collect();
            close(&acc, &want, &format!("{what} accumulate {g:?}"));
        }
    }

    fn dense_planes(g: &ConvGeom) -> Planes {
        Planes {
            x_batch: g.c_in * g.hw(),
            y_batch: g.c_out * g.hw(),
        }
    }

    /// Whatever path this process selected (direct on AVX-512 or AVX2,
    /// GEMM elsewhere), the f32 forward equals the definition.
    #[test]
    fn forward_matches_the_definition() {
        check("selected", |x, wt, b, g, relu, y, accumulate| {
            // SAFETY: dense buffers of the convolution's sizes.
            unsafe {
                conv_forward_into(
                    x.as_ptr(),
                    wt,
                    b,
                    g,
                    relu,
                    SendPtr(y.as_mut_ptr()),
                    dense_planes(g),
                    accumulate,
                )
            };
        });
        let g = &cases()[0];
        let (x, wt) = (ramp(g.x_len(), 0.3), ramp(g.w_len(), 1.1));
        close(
            &conv_forward(&x, &wt, None, g, false),
            &naive(&x, &wt, None, g, false),
            "conv_forward",
        );
    }

    /// Each direct kernel set this CPU has (AVX-512, AVX2), whatever the
    /// process selected, equals the definition.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_available_direct_kernel_matches_the_definition() {
        for kernels in [Kernels::Avx512, Kernels::Avx2] {
            if !kernels.available() {
                eprintln!("{}: not on this CPU, not checked", kernels.name());
                continue;
            }
            check(kernels.name(), |x, wt, b, g, relu, y, accumulate| {
                let (y, planes) = (SendPtr(y.as_mut_ptr()), dense_planes(g));
                // SAFETY: the CPU has the kernels' set (`available`); dense
                // buffers of the convolution's sizes.
                unsafe {
                    match kernels {
                        Kernels::Avx512 => x86::conv::<x86::Avx512>(
                            x.as_ptr(),
                            wt,
                            b,
                            g,
                            relu,
                            y,
                            planes,
                            if accumulate {
                                Start::Output
                            } else {
                                Start::Bias
                            },
                            None,
                            None,
                        ),
                        _ => x86::conv::<x86::Avx2>(
                            x.as_ptr(),
                            wt,
                            b,
                            g,
                            relu,
                            y,
                            planes,
                            if accumulate {
                                Start::Output
                            } else {
                                Start::Bias
                            },
                            None,
                            None,
                        ),
                    }
                }
            });
        }
    }

    /// With a gate, the gated output planes keep `start + conv` only where
    /// the gating buffer is positive (0 elsewhere, also where it is exactly
    /// 0), and the other planes are plain accumulations, on every kernel
    /// set this CPU has and every case (grouped, shuffled, partial
    /// vectors).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn gated_planes_keep_their_sums_only_where_the_gate_is_positive() {
        for kernels in [Kernels::Avx512, Kernels::Avx2] {
            if !kernels.available() {
                eprintln!("{}: not on this CPU, not checked", kernels.name());
                continue;
            }
            for g in cases() {
                let (x, wt) = (ramp(g.x_len(), 0.3), ramp(g.w_len(), 1.1));
                let start = ramp(g.y_len(), 0.9);
                let mut by = ramp(g.y_len(), 2.7);
                let (first, end) = (g.c_out / 3, g.c_out - g.c_out / 4);
                by[first * g.hw()] = 0.0;
                let gate = Gate {
                    by: SendPtr(by.as_mut_ptr()),
                    first,
                    end,
                };
                let mut got = start.clone();
                let y = SendPtr(got.as_mut_ptr());
                type Conv = unsafe fn(
                    *const f32,
                    &[f32],
                    Option<&[f32]>,
                    &ConvGeom,
                    bool,
                    SendPtr<f32>,
                    Planes,
                    Start,
                    Option<&[usize]>,
                    Option<Gate<f32>>,
                );
                let conv: Conv = match kernels {
                    Kernels::Avx512 => x86::conv::<x86::Avx512>,
                    _ => x86::conv::<x86::Avx2>,
                };
                // SAFETY: the CPU has the set (`available`); dense buffers
                // of the convolution's sizes, `by` laid out as the output.
                unsafe {
                    let (xp, planes) = (x.as_ptr(), dense_planes(&g));
                    conv(
                        xp,
                        &wt,
                        None,
                        &g,
                        false,
                        y,
                        planes,
                        Start::Output,
                        None,
                        Some(gate),
                    );
                }
                let hw = g.hw();
                let want: Vec<f64> = naive(&x, &wt, None, &g, false)
                    .iter()
                    .zip(&start)
                    .zip(&by)
                    .enumerate()
                    .map(|(i, ((a, &s), &b))| {
                        let plane = (i / hw) % g.c_out;
                        let kept = !(first..end).contains(&plane) || b > 0.0;
                        if kept {
                            a + f64::from(s)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                close(
                    &got,
                    &want,
                    &format!("{} gated {first}..{end} {g:?}", kernels.name()),
                );
            }
        }
    }

    #[test]
    fn kernel_choice_follows_the_settings_and_the_cpu() {
        let all = |_: Kernels| true;
        let no_avx512 = |k: Kernels| k != Kernels::Avx512;
        let none = |k: Kernels| k == Kernels::Gemm;
        assert_eq!(choose(false, None, all), (Kernels::Avx512, None));
        assert_eq!(choose(false, None, no_avx512), (Kernels::Avx2, None));
        assert_eq!(choose(false, None, none), (Kernels::Gemm, None));
        assert_eq!(choose(false, Some("avx2"), all), (Kernels::Avx2, None));
        assert_eq!(choose(false, Some("gemm"), all), (Kernels::Gemm, None));
        assert_eq!(choose(true, Some("avx2"), all), (Kernels::Gemm, None));
        assert_eq!(choose(false, Some(""), no_avx512), (Kernels::Avx2, None));
        let (k, warning) = choose(false, Some("avx512"), no_avx512);
        assert_eq!(k, Kernels::Avx2);
        assert_eq!(
            warning.as_deref(),
            Some("ESR_EA_DIRECT=avx512: this CPU cannot run it; using avx2")
        );
        let (k, warning) = choose(false, Some("sse"), none);
        assert_eq!(k, Kernels::Gemm);
        assert_eq!(
            warning.as_deref(),
            Some("ESR_EA_DIRECT=sse: unknown kernels (allowed: avx512, avx2, gemm); using gemm")
        );
    }

    #[test]
    fn channel_blocks_cover_every_channel_once() {
        for (cout, max_co) in [1, 3, 4, 8, 9, 16, 24, 27, 96]
            .into_iter()
            .flat_map(|c| [(c, 6), (c, 8)])
        {
            let blocks: Vec<(usize, usize)> = co_blocks(cout, max_co).collect();
            let mut next = 0;
            for &(co0, cnt) in &blocks {
                assert_eq!(co0, next);
                assert!((1..=max_co).contains(&cnt));
                next += cnt;
            }
            assert_eq!(next, cout, "{blocks:?}");
        }
    }
}
