//! The CPU kernels: im2col + GEMM forward, the weight/bias gradient as a
//! batch-summed GEMM (each handed to the direct kernels of
//! [`super::direct`] and [`super::weight_grad`] where those apply), and the
//! helpers of the input gradient.
//!
//! All buffers are contiguous NCHW slices. Work is split into items of one
//! image × one tile of output rows ([`ConvGeom::tiling`]); each item runs its
//! GEMMs single-threaded on a thread-local im2col scratch of just that tile.

use candle_core::WithDType;

use super::direct::Gate;
use super::geom::ConvGeom;
pub use super::geom::Planes;
use super::par::{self, SendPtr};

/// Element types the kernels run on (those the `gemm` crate multiplies).
pub trait Elem: WithDType {
    /// Runs [`conv_forward_into`] with the direct kernels of
    /// [`super::direct`] where they apply (f32 on AVX-512 or AVX2 + FMA);
    /// returns false when the caller must run the GEMM path.
    /// `out_planes`: the stored plane of each output channel (none: its
    /// own), which only the direct kernels can write to; `gate`: output
    /// planes that keep their sums only where another buffer is positive
    /// ([`super::direct::Gate`]).
    ///
    /// # Safety
    /// As [`conv_forward_into`]; `out_planes` a permutation of the
    /// output's planes; with a gate, `gate.by` readable as `y` would be.
    #[allow(clippy::too_many_arguments)]
    unsafe fn direct_forward(
        _x: *const Self,
        _weight: &[Self],
        _bias: Option<&[Self]>,
        _g: &ConvGeom,
        _relu: bool,
        _y: SendPtr<Self>,
        _planes: Planes,
        _accumulate: bool,
        _out_planes: Option<&[usize]>,
        _gate: Option<Gate<Self>>,
    ) -> bool {
        false
    }

    /// `y = init + x ⊛ weight` with the direct kernels, `init` a buffer
    /// laid out as `y` (the same `planes`) that is only read: an
    /// accumulation into a new output without first copying `init` into
    /// it. Returns false when the caller must copy and accumulate.
    ///
    /// # Safety
    /// As [`conv_forward_into`], and `init` readable as `y` would be.
    unsafe fn direct_forward_onto(
        _x: *const Self,
        _weight: &[Self],
        _g: &ConvGeom,
        _init: *const Self,
        _y: SendPtr<Self>,
        _planes: Planes,
    ) -> bool {
        false
    }

    /// [`conv_grad_weight_strided`] with the direct kernels of
    /// [`super::weight_grad`] where they apply (f32 on AVX-512 or AVX2 +
    /// FMA); `None` when the caller must run the GEMM path.
    fn direct_grad_weight(
        _x: &[Self],
        _grad: &[Self],
        _g: &ConvGeom,
        _planes: Planes,
        _with_bias: bool,
    ) -> Option<Vec<Self>> {
        None
    }
}

impl Elem for f32 {
    unsafe fn direct_forward_onto(
        x: *const f32,
        weight: &[f32],
        g: &ConvGeom,
        init: *const f32,
        y: SendPtr<f32>,
        planes: Planes,
    ) -> bool {
        use super::direct::Start;
        // SAFETY: forwarded to the caller.
        unsafe {
            super::direct::conv_forward_f32(
                x,
                weight,
                None,
                g,
                false,
                y,
                planes,
                Start::From(SendPtr(init.cast_mut())),
                None,
                None,
            )
        }
    }

    fn direct_grad_weight(
        x: &[f32],
        grad: &[f32],
        g: &ConvGeom,
        planes: Planes,
        with_bias: bool,
    ) -> Option<Vec<f32>> {
        super::weight_grad::conv_grad_weight_f32(x, grad, g, planes, with_bias)
    }

    unsafe fn direct_forward(
        x: *const f32,
        weight: &[f32],
        bias: Option<&[f32]>,
        g: &ConvGeom,
        relu: bool,
        y: SendPtr<f32>,
        planes: Planes,
        accumulate: bool,
        out_planes: Option<&[usize]>,
        gate: Option<Gate<f32>>,
    ) -> bool {
        // SAFETY: forwarded to the caller.
        unsafe {
            super::direct::conv_forward_f32(
                x,
                weight,
                bias,
                g,
                relu,
                y,
                planes,
                if accumulate {
                    super::direct::Start::Output
                } else {
                    super::direct::Start::Bias
                },
                out_planes,
                gate,
            )
        }
    }
}

impl Elem for f64 {}

fn zero<T: Elem>() -> T {
    T::from_f64(0.0)
}

/// An output buffer of `len` elements left unwritten: saves zeroing buffers
/// that the kernels overwrite whole anyway. Written through raw pointers,
/// then turned into a `Vec` once every element is.
pub(super) struct OutBuf<T> {
    data: Vec<std::mem::MaybeUninit<T>>,
}

impl<T: Elem> OutBuf<T> {
    pub(super) fn new(len: usize) -> Self {
        let mut data = Vec::with_capacity(len);
        // SAFETY: MaybeUninit elements need no initialisation.
        unsafe { data.set_len(len) };
        OutBuf { data }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(super) fn ptr(&mut self) -> SendPtr<T> {
        SendPtr(self.data.as_mut_ptr().cast::<T>())
    }

    /// # Safety
    /// Every element must have been written.
    pub(super) unsafe fn assume_init(self) -> Vec<T> {
        let mut data = std::mem::ManuallyDrop::new(self.data);
        let (ptr, len, cap) = (data.as_mut_ptr(), data.len(), data.capacity());
        // SAFETY: MaybeUninit<T> has T's layout; the caller vouches that
        // all `len` elements are initialised.
        unsafe { Vec::from_raw_parts(ptr.cast::<T>(), len, cap) }
    }
}

/// A strided matrix operand: element (i, j) is at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
struct Mat<T> {
    ptr: *const T,
    rs: usize,
    cs: usize,
}

/// `dst (m×n, strides dst_rs, dst_cs) = [dst +] lhs (m×k) · rhs (k×n)`, on
/// the calling thread.
///
/// # Safety
/// Every element the shapes and strides address must be inside live buffers,
/// and `dst` must not overlap `lhs` or `rhs`.
unsafe fn matmul<T: Elem>(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (*mut T, usize, usize),
    accumulate: bool,
    lhs: Mat<T>,
    rhs: Mat<T>,
) {
    let one = T::from_f64(1.0);
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        lhs.ptr,
        lhs.cs as isize,
        lhs.rs as isize,
        rhs.ptr,
        rhs.cs as isize,
        rhs.rs as isize,
        one,
        one,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// Writes the im2col matrix of output rows `y0..y0+rows` of one group:
/// `cols[(ci·k + ky)·k + kx][(y-y0)·w + x] = xb[c][y+ky-pad][x+kx-pad]`,
/// zero outside the image, where `c` is the stored channel of logical input
/// channel `c0 + ci` ([`ConvGeom::in_channel`]: the shuffle is applied
/// here). `xb` holds one image's `c_in` channel planes.
///
/// Each `(ci, ky, kx)` row is the tile's run of the input plane shifted by
/// `(ky-pad)·w + (kx-pad)` elements: one block copy, then the rows that fall
/// outside the image and the columns that wrapped around are zeroed.
fn im2col<T: Elem>(xb: &[T], c0: usize, g: &ConvGeom, y0: usize, rows: usize, cols: &mut [T]) {
    let (h, w, k, pad, hw) = (g.h as isize, g.w, g.k, g.pad() as isize, g.hw());
    let pt = rows * w;
    let z = zero::<T>();
    for ci in 0..g.cin_g() {
        let c = g.in_channel(c0 + ci);
        let plane = &xb[c * hw..(c + 1) * hw];
        for ky in 0..k {
            // Output rows lo..hi read input rows inside the image.
            let shift = ky as isize - pad + y0 as isize;
            let lo = (-shift).clamp(0, rows as isize) as usize;
            let hi = (h - shift).clamp(lo as isize, rows as isize) as usize;
            for kx in 0..k {
                let dx = kx as isize - pad;
                let r = (ci * k + ky) * k + kx;
                let dst = &mut cols[r * pt..(r + 1) * pt];
                dst[..lo * w].fill(z);
                dst[hi * w..].fill(z);
                let block = &mut dst[lo * w..hi * w];
                let len = block.len() as isize;
                // Source index of block[0]; copy where it lies inside the plane.
                let src0 = (lo as isize + shift) * w as isize + dx;
                let j0 = (-src0).clamp(0, len);
                let j1 = (hw as isize - src0).clamp(j0, len);
                let (j0u, j1u) = (j0 as usize, j1 as usize);
                block[..j0u].fill(z);
                block[j1u..].fill(z);
                if j1u > j0u {
                    let s0 = (src0 + j0) as usize;
                    block[j0u..j1u].copy_from_slice(&plane[s0..s0 + (j1u - j0u)]);
                }
                // Columns whose source wrapped to a neighbouring row.
                let nz = dx.unsigned_abs().min(w);
                if nz > 0 {
                    for row in block.chunks_exact_mut(w) {
                        if dx > 0 {
                            row[w - nz..].fill(z);
                        } else {
                            row[..nz].fill(z);
                        }
                    }
                }
            }
        }
    }
}

/// Scratch length for im2col of one tile (none for 1x1 kernels, which read
/// the input directly).
fn scratch_len(g: &ConvGeom, rows: usize) -> usize {
    if g.k == 1 {
        0
    } else {
        g.col_rows() * rows * g.w
    }
}

/// The forward convolution `y = x ⊛ weight (+ bias)`, optionally followed by
/// ReLU, as `[batch, c_out, h, w]`. `weight` is `[c_out, cin_g, k, k]`.
pub fn conv_forward<T: Elem>(
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    g: &ConvGeom,
    relu: bool,
) -> Vec<T> {
    debug_assert_eq!(x.len(), g.x_len());
    let mut y = OutBuf::<T>::new(g.y_len());
    if y.is_empty() {
        return Vec::new();
    }
    let planes = Planes {
        x_batch: g.c_in * g.hw(),
        y_batch: g.c_out * g.hw(),
    };
    // SAFETY: `x` and `y` hold exactly the dense tensors `planes` describes.
    unsafe { conv_forward_into(x.as_ptr(), weight, bias, g, relu, y.ptr(), planes, false) };
    // SAFETY: the items cover every (image, group, row) of `y`, and each
    // writes its whole block (bias fill, or a GEMM that does not read the
    // destination) before the ReLU reads it.
    unsafe { y.assume_init() }
}

/// The forward convolution written into a strided output (see [`Planes`]):
/// `y[b] = [y[b] +] x[b] ⊛ weight (+ bias)`, then ReLU if `relu`. With
/// `accumulate` the result is added to what `y` holds (no bias, no ReLU).
///
/// # Safety
/// `x` must point at `batch` images of `c_in` planes `planes.x_batch` apart
/// that stay unchanged during the call, `y` at `batch` images of `c_out`
/// planes `planes.y_batch` apart, initialised when `accumulate`, that nothing
/// else reads or writes during the call; the two regions must not overlap.
#[allow(clippy::too_many_arguments)]
pub unsafe fn conv_forward_into<T: Elem>(
    x: *const T,
    weight: &[T],
    bias: Option<&[T]>,
    g: &ConvGeom,
    relu: bool,
    y: SendPtr<T>,
    planes: Planes,
    accumulate: bool,
) {
    debug_assert_eq!(weight.len(), g.w_len());
    debug_assert!(!accumulate || (bias.is_none() && !relu));
    if g.batch == 0 || g.hw() == 0 || g.c_out == 0 {
        return;
    }
    // SAFETY: forwarded to the caller.
    if unsafe { T::direct_forward(x, weight, bias, g, relu, y, planes, accumulate, None, None) } {
        return;
    }
    let tiling = g.tiling(par::threads());
    let (hw, w, kr) = (g.hw(), g.w, g.col_rows());
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let x = SendPtr(x.cast_mut());
    par::for_each(
        g.batch * tiling.count,
        || vec![zero::<T>(); scratch_len(g, tiling.rows)],
        |cols, item| {
            let (b, t) = (item / tiling.count, item % tiling.count);
            let y0 = t * tiling.rows;
            let rows = tiling.rows.min(g.h - y0);
            let pt = rows * w;
            // SAFETY: the caller vouches for `c_in` readable planes per image.
            let xb = unsafe {
                std::slice::from_raw_parts(x.add(b * planes.x_batch).cast_const(), g.c_in * hw)
            };
            for grp in 0..g.groups {
                let rhs = if g.k == 1 {
                    debug_assert_eq!(g.shuffle, 1, "1x1 convolutions take no shuffle");
                    Mat {
                        ptr: xb[(grp * cin_g * hw) + y0 * w..].as_ptr(),
                        rs: hw,
                        cs: 1,
                    }
                } else {
                    im2col(xb, grp * cin_g, g, y0, rows, cols);
                    Mat {
                        ptr: cols.as_ptr(),
                        rs: pt,
                        cs: 1,
                    }
                };
                let lhs = Mat {
                    ptr: weight[grp * cout_g * kr..].as_ptr(),
                    rs: kr,
                    cs: 1,
                };
                let first = b * planes.y_batch + grp * cout_g * hw + y0 * w;
                // SAFETY: rows y0..y0+rows of this image's group channels
                // belong to this item alone; `y` outlives the parallel loop.
                unsafe {
                    let dst = y.add(first);
                    if let Some(bias) = bias {
                        for co in 0..cout_g {
                            let v = bias[grp * cout_g + co];
                            let row = dst.add(co * hw);
                            (0..pt).for_each(|i| row.add(i).write(v));
                        }
                    }
                    let read_dst = accumulate || bias.is_some();
                    matmul((cout_g, pt, kr), (dst, hw, 1), read_dst, lhs, rhs);
                    if relu {
                        let z = zero::<T>();
                        for co in 0..cout_g {
                            for v in std::slice::from_raw_parts_mut(dst.add(co * hw), pt) {
                                *v = if *v > z { *v } else { z };
                            }
                        }
                    }
                }
            }
        },
    );
}

/// The weight for computing the input gradient as a forward convolution:
/// `[c_in, cout_g, k, k]` with `out[grp·cin_g + ci][co][k-1-ky][k-1-kx] =
/// weight[grp·cout_g + co][ci][ky][kx]` (transposed per group, rotated 180°).
/// Convolving the output gradient with it (geometry
/// [`ConvGeom::transposed`]) is exactly `col2im(Wᵀ · grad)` for stride 1 and
/// "same" padding, without the scatter-add.
pub fn flip_weight<T: Elem>(weight: &[T], g: &ConvGeom) -> Vec<T> {
    let (k, kk, cin_g, cout_g) = (g.k, g.k * g.k, g.cin_g(), g.cout_g());
    let mut out = vec![zero::<T>(); weight.len()];
    for grp in 0..g.groups {
        for co in 0..cout_g {
            for ci in 0..cin_g {
                let src = &weight[((grp * cout_g + co) * cin_g + ci) * kk..][..kk];
                let dst = &mut out[((grp * cin_g + ci) * cout_g + co) * kk..][..kk];
                for ky in 0..k {
                    for kx in 0..k {
                        dst[(k - 1 - ky) * k + (k - 1 - kx)] = src[ky * k + kx];
                    }
                }
            }
        }
    }
    out
}

/// The input gradient: `grad` `[batch, c_out, h, w]` convolved with the
/// flipped weight, giving `[batch, c_in, h, w]` (in stored channel order:
/// with a shuffle, logical channel `k`'s gradient goes to
/// [`ConvGeom::in_channel`]`(k)`).
pub fn conv_grad_input<T: Elem>(grad: &[T], weight: &[T], g: &ConvGeom) -> Vec<T> {
    conv_grad_input_strided(grad, g.c_out * g.hw(), weight, g)
}

/// [`conv_grad_input`] of an output gradient whose images lie `grad_batch`
/// elements apart inside a larger buffer (`grad` from image 0's first
/// plane); the result is dense, `[batch, c_in, h, w]`.
pub fn conv_grad_input_strided<T: Elem>(
    grad: &[T],
    grad_batch: usize,
    weight: &[T],
    g: &ConvGeom,
) -> Vec<T> {
    assert!(
        g.batch == 0 || grad.len() >= (g.batch - 1) * grad_batch + g.c_out * g.hw(),
        "conv_grad_input_strided: {} elements hold no {} images {grad_batch} apart",
        grad.len(),
        g.batch
    );
    // SAFETY: `grad` holds the images (checked above).
    let dx = unsafe { flipped_conv(grad.as_ptr(), grad_batch, &flip_weight(weight, g), g) };
    if g.shuffle <= 1 {
        return dx;
    }
    let hw = g.hw();
    let mut out = OutBuf::<T>::new(dx.len());
    let dst = out.ptr();
    par::for_each(
        g.batch * g.c_in,
        || (),
        |_, item| {
            let (b, k) = (item / g.c_in, item % g.c_in);
            let src = &dx[item * hw..][..hw];
            // SAFETY: `in_channel` is a permutation, so every (image,
            // channel) plane of `out` is written by exactly one item.
            unsafe {
                let d = dst.add((b * g.c_in + g.in_channel(k)) * hw);
                std::ptr::copy_nonoverlapping(src.as_ptr(), d, hw);
            }
        },
    );
    // SAFETY: all planes written, see above.
    unsafe { out.assume_init() }
}

/// `grad ⊛ flipped` in logical channel order, dense `[batch, c_in, h, w]`,
/// from an output gradient whose images lie `grad_batch` elements apart.
///
/// # Safety
/// `grad` must point at `batch` images of `c_out` planes `grad_batch`
/// apart that stay unchanged during the call.
unsafe fn flipped_conv<T: Elem>(
    grad: *const T,
    grad_batch: usize,
    flipped: &[T],
    g: &ConvGeom,
) -> Vec<T> {
    let gt = g.transposed();
    let mut dx = OutBuf::<T>::new(gt.y_len());
    if dx.is_empty() {
        return Vec::new();
    }
    let planes = Planes {
        x_batch: grad_batch,
        y_batch: gt.c_out * gt.hw(),
    };
    // SAFETY: the caller vouches for `grad`; `dx` is the dense result.
    unsafe { conv_forward_into(grad, flipped, None, &gt, false, dx.ptr(), planes, false) };
    // SAFETY: as in `conv_forward`: every element written, no bias to add.
    unsafe { dx.assume_init() }
}

/// Where `by` (laid out as `d`: `images` images `batch` elements apart) is
/// not positive, `d` becomes 0, for the elements `off..off+len` of each
/// image: the gradient through the ReLU whose output is `by`.
///
/// # Safety
/// Those elements of `d` must be writable and touched by no one else
/// during the call, those of `by` readable.
pub(super) unsafe fn keep_where_positive<T: Elem>(
    d: SendPtr<T>,
    by: SendPtr<T>,
    (images, batch): (usize, usize),
    (off, len): (usize, usize),
) {
    par::for_each(
        images,
        || (),
        |_, b| {
            let at = b * batch + off;
            // SAFETY: image b's elements, this item's alone (the caller's).
            let (d, by) = unsafe {
                (
                    std::slice::from_raw_parts_mut(d.add(at), len),
                    std::slice::from_raw_parts(by.add(at).cast_const(), len),
                )
            };
            let z = zero::<T>();
            for (d, &y) in d.iter_mut().zip(by) {
                *d = if y > z { *d } else { z };
            }
        },
    );
}

/// The input gradient added into a strided buffer: `dx[b][in_channel(k)] +=
/// (grad ⊛ flipped weight)[b][k]`, where `grad` is a dense `[batch, c_out,
/// h, w]` and image `b` of `dx` starts `dx_batch` elements after `dx`.
///
/// # Safety
/// `dx` must point at `batch` initialised images of `c_in` planes
/// `dx_batch` apart that nothing else touches during the call.
pub unsafe fn conv_grad_input_add<T: Elem>(
    grad: &[T],
    weight: &[T],
    g: &ConvGeom,
    dx: SendPtr<T>,
    dx_batch: usize,
) {
    debug_assert_eq!(grad.len(), g.y_len());
    // SAFETY: `grad` is dense and separate from `dx`; the rest is the
    // caller's.
    unsafe {
        conv_grad_input_add_gated(
            grad.as_ptr(),
            g.c_out * g.hw(),
            weight,
            g,
            (dx, dx_batch),
            None,
        )
    }
}

/// [`conv_grad_input_add`] with the output gradient's images `grad_batch`
/// elements apart (inside a larger buffer) and, with a `gate`, the stored
/// planes `gate.first..gate.end` of `dx` then kept only where `gate.by`
/// (laid out as `dx`) is positive: the gradient through the ReLU that made
/// them, applied as their last term is added (see
/// [`super::direct::Gate`]).
///
/// # Safety
/// `grad` must point at `batch` images of `c_out` planes `grad_batch`
/// apart that stay unchanged during the call; `dx` as
/// [`conv_grad_input_add`], not overlapping `grad`'s planes (they may lie
/// in one buffer); `gate.by` readable as `dx`.
pub unsafe fn conv_grad_input_add_gated<T: Elem>(
    grad: *const T,
    grad_batch: usize,
    weight: &[T],
    g: &ConvGeom,
    (dx, dx_batch): (SendPtr<T>, usize),
    gate: Option<Gate<T>>,
) {
    let flipped = flip_weight(weight, g);
    let gt = g.transposed();
    let hw = g.hw();
    // With a shuffle the logical channels land on permuted stored planes:
    // the direct kernels write each where it belongs.
    let to: Option<Vec<usize>> =
        (g.shuffle > 1).then(|| (0..g.c_in).map(|k| g.in_channel(k)).collect());
    let planes = Planes {
        x_batch: grad_batch,
        y_batch: dx_batch,
    };
    // SAFETY: forwarded to the caller; `to` is a permutation of the planes.
    if unsafe {
        T::direct_forward(
            grad,
            &flipped,
            None,
            &gt,
            false,
            dx,
            planes,
            true,
            to.as_deref(),
            gate,
        )
    } {
        return;
    }
    // The GEMM path: where a shuffle permutes the planes, which no GEMM
    // stride expresses, through a dense temporary; then the gate.
    match &to {
        // SAFETY: the caller vouches for `grad` and `dx`.
        None => unsafe { conv_forward_into(grad, &flipped, None, &gt, false, dx, planes, true) },
        Some(_) => {
            // SAFETY: the caller vouches for `grad`.
            let part = unsafe { flipped_conv(grad, grad_batch, &flipped, g) };
            par::for_each(
                g.batch * g.c_in,
                || (),
                |_, item| {
                    let (b, k) = (item / g.c_in, item % g.c_in);
                    let src = &part[item * hw..][..hw];
                    // SAFETY: `in_channel` is a permutation, so every
                    // (image, channel) plane of `dx` is updated by exactly
                    // one item.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(
                            dx.add(b * dx_batch + g.in_channel(k) * hw),
                            hw,
                        )
                    };
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += v;
                    }
                },
            );
        }
    }
    if let Some(gate) = gate {
        let span = (gate.first * hw, (gate.end - gate.first) * hw);
        // SAFETY: the gated planes of `dx` (the caller's) and of `gate.by`,
        // laid out alike.
        unsafe { keep_where_positive(dx, gate.by, (g.batch, dx_batch), span) };
    }
}

/// The weight gradient `Σ_b grad[b] · cols(x[b])ᵀ` (`[c_out, cin_g, k, k]`)
/// followed, when `with_bias`, by the bias gradient `Σ_{b,pixels} grad`
/// (`[c_out]`), in one buffer.
///
/// The sum over images and row tiles runs through [`par::sum_in_pieces`]:
/// the result depends neither on thread timing nor on the number of threads.
pub fn conv_grad_weight<T: Elem>(x: &[T], grad: &[T], g: &ConvGeom, with_bias: bool) -> Vec<T> {
    debug_assert_eq!(x.len(), g.x_len());
    debug_assert_eq!(grad.len(), g.y_len());
    let planes = Planes {
        x_batch: g.c_in * g.hw(),
        y_batch: g.c_out * g.hw(),
    };
    conv_grad_weight_strided(x, grad, g, planes, with_bias)
}

/// [`conv_grad_weight`] with the input and the output gradient inside
/// larger buffers ([`Planes`]; image `b` of `x` starts at `b·x_batch`, of
/// `grad` at `b·y_batch`).
pub fn conv_grad_weight_strided<T: Elem>(
    x: &[T],
    grad: &[T],
    g: &ConvGeom,
    planes: Planes,
    with_bias: bool,
) -> Vec<T> {
    if let Some(direct) = T::direct_grad_weight(x, grad, g, planes, with_bias) {
        return direct;
    }
    // Tiles fixed by the shapes alone (never by the thread count), summed
    // in fixed pieces: any number of threads gives the same bits.
    let tiling = g.tiling(par::SUM_PIECES);
    let (hw, w, kr) = (g.hw(), g.w, g.col_rows());
    let (cin_g, cout_g, w_len) = (g.cin_g(), g.cout_g(), g.w_len());
    let n_items = g.batch * tiling.count;
    let len = w_len + if with_bias { g.c_out } else { 0 };
    if n_items == 0 || hw == 0 {
        return vec![zero::<T>(); len];
    }
    let sum = par::sum_in_pieces(
        par::SUM_PIECES,
        n_items,
        len,
        zero::<T>(),
        || vec![zero::<T>(); scratch_len(g, tiling.rows)],
        |acc, cols, item| {
            let (b, t) = (item / tiling.count, item % tiling.count);
            let y0 = t * tiling.rows;
            let rows = tiling.rows.min(g.h - y0);
            let pt = rows * w;
            let xb = &x[b * planes.x_batch..][..g.c_in * hw];
            for grp in 0..g.groups {
                // colsᵀ as a (pixels × col_rows) operand.
                let rhs = if g.k == 1 {
                    debug_assert_eq!(g.shuffle, 1, "1x1 convolutions take no shuffle");
                    Mat {
                        ptr: xb[(grp * cin_g * hw) + y0 * w..].as_ptr(),
                        rs: 1,
                        cs: hw,
                    }
                } else {
                    im2col(xb, grp * cin_g, g, y0, rows, cols);
                    Mat {
                        ptr: cols.as_ptr(),
                        rs: 1,
                        cs: pt,
                    }
                };
                let gfirst = b * planes.y_batch + grp * cout_g * hw + y0 * w;
                let lhs = Mat {
                    ptr: grad[gfirst..].as_ptr(),
                    rs: hw,
                    cs: 1,
                };
                // The group's block of `acc` holds its gradient transposed,
                // `[col_rows, cout_g]`: the GEMM then writes a column-major
                // result and packs `cols` along its contiguous rows.
                let dst = acc[grp * cout_g * kr..].as_mut_ptr();
                // SAFETY: operands index inside x, grad, cols and acc.
                unsafe { matmul((cout_g, kr, pt), (dst, 1, cout_g), true, lhs, rhs) };
                if with_bias {
                    for co in 0..cout_g {
                        let row = &grad[gfirst + co * hw..][..pt];
                        let mut s = zero::<T>();
                        for &v in row {
                            s += v;
                        }
                        acc[w_len + grp * cout_g + co] += s;
                    }
                }
            }
        },
    );
    // Back from per-group `[col_rows, cout_g]` to `[c_out, col_rows]`.
    let mut total = sum.clone();
    for grp in 0..g.groups {
        let base = grp * cout_g * kr;
        for co in 0..cout_g {
            for r in 0..kr {
                total[base + co * kr + r] = sum[base + r * cout_g + co];
            }
        }
    }
    total
}

/// The gradient through a ReLU given its output: `grad` where `y > 0`, else 0.
pub fn relu_grad<T: Elem>(grad: &[T], y: &[T]) -> Vec<T> {
    debug_assert_eq!(grad.len(), y.len());
    let z = zero::<T>();
    let mut out = OutBuf::<T>::new(grad.len());
    const CHUNK: usize = 1 << 16;
    let n = grad.len().div_ceil(CHUNK);
    let dst = out.ptr();
    par::for_each(
        n,
        || (),
        |_, c| {
            let start = c * CHUNK;
            let len = CHUNK.min(grad.len() - start);
            let (g, y) = (&grad[start..start + len], &y[start..start + len]);
            for (i, (&gv, &yv)) in g.iter().zip(y).enumerate() {
                // SAFETY: chunk c owns out[start..start+len].
                unsafe { dst.add(start + i).write(if yv > z { gv } else { z }) };
            }
        },
    );
    // SAFETY: the chunks cover `out` and write each element.
    unsafe { out.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct 7-loop convolution, the definition.
    fn naive(x: &[f64], wt: &[f64], g: &ConvGeom) -> Vec<f64> {
        let (h, w, k, p) = (g.h as isize, g.w as isize, g.k, g.pad() as isize);
        let mut y = vec![0.0; g.y_len()];
        for b in 0..g.batch {
            for o in 0..g.c_out {
                let grp = o / g.cout_g();
                for yy in 0..h {
                    for xx in 0..w {
                        let mut s = 0.0;
                        for ci in 0..g.cin_g() {
                            let c = grp * g.cin_g() + ci;
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = (yy + ky as isize - p, xx + kx as isize - p);
                                    if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                        s += wt[((o * g.cin_g() + ci) * k + ky) * k + kx]
                                            * x[((b * g.c_in + c) * g.h + iy as usize) * g.w
                                                + ix as usize];
                                    }
                                }
                            }
                        }
                        y[((b * g.c_out + o) * g.h + yy as usize) * g.w + xx as usize] = s;
                    }
                }
            }
        }
        y
    }

    fn ramp(n: usize, seed: f64) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * 0.7 + seed).sin()).collect()
    }

    #[test]
    fn forward_matches_definition() {
        for (k, groups, h, w) in [
            (3, 1, 5, 7),
            (1, 2, 4, 3),
            (3, 2, 1, 1),
            (5, 1, 3, 6),
            (3, 4, 6, 2),
        ] {
            let g = ConvGeom {
                batch: 2,
                c_in: 4,
                c_out: 8,
                h,
                w,
                k,
                groups,
                shuffle: 1,
            };
            let x = ramp(g.x_len(), 0.3);
            let wt = ramp(g.w_len(), 1.1);
            let want = naive(&x, &wt, &g);
            let got = conv_forward(&x, &wt, None, &g, false);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{g:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn flip_twice_is_identity() {
        let g = ConvGeom {
            batch: 1,
            c_in: 6,
            c_out: 4,
            h: 3,
            w: 3,
            k: 3,
            groups: 2,
            shuffle: 1,
        };
        let wt = ramp(g.w_len(), 0.0);
        let back = flip_weight(&flip_weight(&wt, &g), &g.transposed());
        assert_eq!(back, wt);
    }

    /// A shuffled grouped convolution's input gradient, added in f32 where
    /// the direct kernels write each logical channel onto its stored
    /// plane, equals the f64 one computed densely and then moved, on top
    /// of what the buffer held (in a wider buffer: `dx_batch` > its planes).
    #[test]
    fn shuffled_input_gradient_adds_onto_the_stored_planes() {
        for (c_in, c_out, h, w, groups, shuffle) in [
            (12, 6, 5, 16, 3, 3),
            (8, 4, 3, 17, 2, 2),
            (16, 16, 4, 32, 4, 4),
        ] {
            let g = ConvGeom {
                batch: 2,
                c_in,
                c_out,
                h,
                w,
                k: 3,
                groups,
                shuffle,
            };
            let (hw, dx_batch) = (g.hw(), (c_in + 3) * g.hw());
            let grad = ramp(g.y_len(), 0.4);
            let wt = ramp(g.w_len(), 1.3);
            let start = ramp(g.batch * dx_batch, 2.1);
            let moved = conv_grad_input(&grad, &wt, &g);
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let mut got = f32s(&start);
            // SAFETY: `got` holds `batch` images of `dx_batch` elements.
            unsafe {
                conv_grad_input_add(
                    &f32s(&grad),
                    &f32s(&wt),
                    &g,
                    SendPtr(got.as_mut_ptr()),
                    dx_batch,
                )
            };
            for (i, (&a, &s)) in got.iter().zip(&start).enumerate() {
                let (b, r) = (i / dx_batch, i % dx_batch);
                let want = if r < c_in * hw {
                    s + moved[b * c_in * hw + r]
                } else {
                    s
                };
                let tol = 1e-4 * want.abs().max(1.0);
                assert!(
                    (f64::from(a) - want).abs() < tol,
                    "{g:?} at {i}: {a} vs {want}"
                );
            }
        }
    }

    /// The gated input gradient from a gradient inside a larger buffer:
    /// the planes `first..end` of the result are the ungated sum kept
    /// where the gate is positive, the others the plain sum; in f32 (the
    /// selected kernels) and f64 (the GEMM path), with and without a
    /// shuffle, 1x1 and 3x3.
    #[test]
    fn gated_input_gradient_masks_the_gated_planes_only() {
        for (c_in, c_out, k, groups, shuffle) in [
            (12, 6, 3, 3, 3),
            (8, 4, 3, 1, 1),
            (24, 16, 1, 1, 1),
            (16, 16, 3, 4, 4),
        ] {
            let g = ConvGeom {
                batch: 3,
                c_in,
                c_out,
                h: 5,
                w: 17,
                k,
                groups,
                shuffle,
            };
            let hw = g.hw();
            let (grad_batch, dx_batch) = ((c_out + 2) * hw, (c_in + 3) * hw);
            let grad_buf = ramp(g.batch * grad_batch, 0.4);
            let dense: Vec<f64> = (0..g.batch)
                .flat_map(|b| grad_buf[b * grad_batch + hw..][..c_out * hw].to_vec())
                .collect();
            let wt = ramp(g.w_len(), 1.3);
            let start = ramp(g.batch * dx_batch, 2.1);
            let mut by = ramp(g.batch * dx_batch, 0.8);
            by[2 * hw] = 0.0;
            let (first, end) = (2, c_in - 1);
            let moved = conv_grad_input(&dense, &wt, &g);
            let want: Vec<f64> = (0..start.len())
                .map(|i| {
                    let (b, r) = (i / dx_batch, i % dx_batch);
                    if r >= c_in * hw {
                        return start[i];
                    }
                    let sum = start[i] + moved[b * c_in * hw + r];
                    let gated = (first..end).contains(&(r / hw));
                    if gated && by[i] <= 0.0 {
                        0.0
                    } else {
                        sum
                    }
                })
                .collect();
            fn run<T: Elem>(
                grad: &[T],
                wt: &[T],
                g: &ConvGeom,
                start: &[T],
                by: &[T],
                (grad_batch, dx_batch, first, end): (usize, usize, usize, usize),
            ) -> Vec<T> {
                let mut got = start.to_vec();
                let gate = Gate {
                    by: SendPtr(by.as_ptr().cast_mut()),
                    first,
                    end,
                };
                // SAFETY: `grad` holds `batch` images `grad_batch` apart
                // (from its second plane), `got` and `by` `batch` images
                // of `dx_batch` elements.
                unsafe {
                    conv_grad_input_add_gated(
                        grad[g.hw()..].as_ptr(),
                        grad_batch,
                        wt,
                        g,
                        (SendPtr(got.as_mut_ptr()), dx_batch),
                        Some(gate),
                    )
                };
                got
            }
            let sizes = (grad_batch, dx_batch, first, end);
            let got64 = run(&grad_buf, &wt, &g, &start, &by, sizes);
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let got32 = run(
                &f32s(&grad_buf),
                &f32s(&wt),
                &g,
                &f32s(&start),
                &f32s(&by),
                sizes,
            );
            for (i, &w) in want.iter().enumerate() {
                let tol = 1e-4 * w.abs().max(1.0);
                assert!(
                    (got64[i] - w).abs() < 1e-9 * w.abs().max(1.0),
                    "f64 {g:?} at {i}: {} vs {w}",
                    got64[i]
                );
                assert!(
                    (f64::from(got32[i]) - w).abs() < tol,
                    "f32 {g:?} at {i}: {} vs {w}",
                    got32[i]
                );
            }
        }
    }
}
