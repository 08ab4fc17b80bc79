//! The dense part of a G block as one op: every convolution reads the
//! channel-shuffled prefix of one feature buffer and writes its output
//! channels into the buffer's next slice.
//!
//! Why: as a graph of candle ops, a dense block of `n` convolutions builds
//! `n` ever longer concatenations (quadratic copies), and its backward
//! splits each concatenation's gradient again and sums the pieces through a
//! `zeros_like` and an `add` per piece. Here the forward writes each
//! convolution's output in place, and the backward walks the convolutions in
//! reverse over one gradient buffer, adding each input gradient into the
//! prefix it came from. The arithmetic per convolution is that of
//! [`super::conv2d_shuffled_relu`] (same kernels); only the summation order
//! of the concatenation's gradient differs (rounding-level).

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType,
};

use super::direct::Gate;
use super::geom::ConvGeom;
use super::kernels::{self, Elem, OutBuf, Planes};
use super::par::{self, SendPtr};

/// One convolution of a dense G block: `relu(conv3x3(channel_shuffle(prefix,
/// j+1), weight, bias, groups))` for the `j`-th layer, whose prefix holds
/// `(j+1)·growth` channels.
#[derive(Debug, Clone, Copy)]
pub struct DenseLayer<'a> {
    /// `[growth, (j+1)·growth/groups, 3, 3]`.
    pub weight: &'a Tensor,
    /// `[growth]`, when the network has biases.
    pub bias: Option<&'a Tensor>,
    /// Channel groups of the convolution.
    pub groups: usize,
}

/// The features of a G block's dense part, `[B, (n+1)·G, H, W]`: `xi`
/// (`[B, G, H, W]`) followed by each layer's `G` output channels, layer `j`
/// reading `channel_shuffle(features[.., ..(j+1)·G], j+1)` (reference
/// `RDB_Conv`: the shuffle feeds only the conv, the concatenation keeps the
/// original order). Differentiable in `xi` and every weight and bias.
///
/// On the CPU (f32/f64, custom kernels on) it is one op; elsewhere it is the
/// chain of [`super::conv2d_shuffled_relu`] and concatenations.
pub fn dense_group_features(xi: &Tensor, layers: &[DenseLayer]) -> Result<Tensor> {
    dense_group(xi, layers, None)
}

/// A G block's body: the 1x1 convolution `tail` (`LFF`, `[O, (n+1)·G, 1,
/// 1]`, no ReLU) over [`dense_group_features`], `[B, O, H, W]`.
///
/// On the CPU it is one op: the features stay inside it (kept for the
/// backward when gradients are recorded) instead of becoming a tensor of
/// the graph, whose gradient candle would build as a zero-filled tensor
/// plus an add, and which the backward would copy once more. Elsewhere it
/// is [`dense_group_features`] and a convolution.
pub fn dense_group_body(xi: &Tensor, layers: &[DenseLayer], tail: DenseLayer) -> Result<Tensor> {
    dense_group(xi, layers, Some((tail, None)))
}

/// A whole G block, `[B, O, H, W]` from its input `x` (`[B, I, H, W]`):
/// `InConv`, [`dense_group_body`] and the residual (`ends`). One op on the
/// CPU, for the same reasons: the block's input, `xi`, the body and
/// `OutConv`'s output would each be a graph tensor whose gradient candle
/// sums through zeros and adds, on one thread.
pub fn dense_group_block(
    x: &Tensor,
    ends: BlockEnds,
    layers: &[DenseLayer],
    tail: DenseLayer,
) -> Result<Tensor> {
    dense_group(x, layers, Some((tail, Some(ends))))
}

fn dense_group(
    x: &Tensor,
    layers: &[DenseLayer],
    tail: Option<(DenseLayer, Option<BlockEnds>)>,
) -> Result<Tensor> {
    let Unpacked {
        ends,
        tail,
        dims: (batch, in_ch, h, w),
        growth,
    } = Unpacked::new(x, tail)?;
    let with_bias = layers.first().is_some_and(|l| l.bias.is_some());
    let uniform_bias = layers.iter().all(|l| l.bias.is_some() == with_bias);
    let fused = x.device().is_cpu()
        && layers.iter().all(|l| l.weight.device().is_cpu())
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && super::custom_kernels_enabled()
        && super::relu_fusion_enabled()
        && uniform_bias
        && tail.is_none_or(|t| t.weight.device().is_cpu() && t.bias.is_some() == with_bias)
        && ends.is_none_or(|e| {
            e.layers()
                .all(|l| l.weight.device().is_cpu() && l.bias.is_some() == with_bias)
        })
        && !layers.is_empty();
    if !fused {
        let xi = match &ends {
            Some(e) => e.project(x)?,
            None => x.clone(),
        };
        let features = chained(&xi, layers)?;
        let Some(t) = tail else {
            return Ok(features);
        };
        let body = super::conv2d(&features, t.weight, t.bias, 1)?;
        return match &ends {
            Some(e) => e.output(x, &xi, &body),
            None => Ok(body),
        };
    }
    let xi = x;
    let mut geoms = Vec::with_capacity(layers.len());
    let mut flat_w = Vec::with_capacity(layers.len());
    let mut flat_b = Vec::with_capacity(layers.len());
    for (j, l) in layers.iter().enumerate() {
        let c_in = (j + 1) * growth;
        let groups = l.groups;
        let want = [growth, c_in / groups.max(1), 3, 3];
        if groups == 0 || c_in % groups != 0 || growth % groups != 0 || l.weight.dims() != want {
            bail!(
                "dense layer {j}: expected weight {want:?} ({groups} groups over {c_in} channels), got {:?}",
                l.weight.dims()
            );
        }
        if l.bias.is_some_and(|b| b.dims() != [growth]) || l.weight.dtype() != xi.dtype() {
            bail!("dense layer {j}: bias must be [{growth}] and every tensor share one dtype");
        }
        let mut g = ConvGeom {
            batch,
            c_in,
            c_out: growth,
            h,
            w,
            k: 3,
            groups,
            shuffle: 1,
        };
        g.shuffle = j + 1;
        geoms.push(g);
        flat_w.push(l.weight.flatten_all()?);
        if let Some(b) = l.bias {
            flat_b.push(b.clone());
        }
    }
    let channels = (layers.len() + 1) * growth;
    let tail_geom = match tail {
        Some(t) => {
            let c_out = t.weight.dim(0)?;
            let g = ConvGeom {
                batch,
                c_in: channels,
                c_out,
                h,
                w,
                k: 1,
                groups: 1,
                shuffle: 1,
            };
            let g = checked_as(&t, g, "the block's last 1x1 convolution")?;
            flat_w.push(t.weight.flatten_all()?);
            flat_b.extend(t.bias.cloned());
            Some(g)
        }
        None => None,
    };
    let op_ends = match (&ends, &tail_geom) {
        (Some(e), Some(t)) => {
            let geometry = e.geometry((batch, in_ch, h, w), growth, t.c_out)?;
            for l in e.layers() {
                flat_w.push(l.weight.flatten_all()?);
                flat_b.extend(l.bias.cloned());
            }
            geometry
        }
        _ => Ends::none(growth),
    };
    let end_layers = ends.iter().flat_map(|e| e.layers());
    let keep_features = tail.is_some()
        && (xi.track_op()
            || layers
                .iter()
                .chain(&tail)
                .chain(end_layers)
                .any(|l| l.weight.track_op()));
    super::alloc::tune_allocator();
    let op = DenseGroupOp {
        geoms,
        with_bias,
        tail: tail_geom,
        ends: op_ends,
        keep_features,
        features: Default::default(),
    };
    let xi = xi.contiguous()?;
    let weights = Tensor::cat(&flat_w, 0)?;
    if with_bias {
        xi.apply_op3(&weights, &Tensor::cat(&flat_b, 0)?, op)
    } else {
        xi.apply_op2(&weights, op)
    }
}

/// The block's residual (spec §4): what is added to its body's output.
#[derive(Debug, Clone, Copy)]
pub enum Residual<'a> {
    /// The block's input itself (`O = I`).
    Input,
    /// The projected input `xi` (`O = G`; the input itself when there is
    /// no `InConv`).
    Projected,
    /// `OutConv`: a 1x1 convolution of the input, `I → O`.
    Conv(DenseLayer<'a>),
}

/// The parts of a block around its dense part and last 1x1 convolution:
/// `InConv` and the residual.
#[derive(Debug, Clone, Copy)]
pub struct BlockEnds<'a> {
    /// `InConv`, 1x1 `I → G`, when `I ≠ G`.
    pub in_conv: Option<DenseLayer<'a>>,
    pub residual: Residual<'a>,
}

impl BlockEnds<'_> {
    /// Every layer of the ends: `InConv`, then `OutConv`.
    fn layers(&self) -> impl Iterator<Item = &DenseLayer<'_>> {
        let out_conv = match &self.residual {
            Residual::Conv(l) => Some(l),
            _ => None,
        };
        self.in_conv.iter().chain(out_conv)
    }

    /// `xi`: `InConv` of `x`, or `x` (the op chain's way; C blocks use it).
    pub fn project(&self, x: &Tensor) -> Result<Tensor> {
        match self.in_conv {
            Some(c) => super::conv2d(x, c.weight, c.bias, 1),
            None => Ok(x.clone()),
        }
    }

    /// The block's output from its input, `xi` and its body, as the op
    /// chain computes it (C blocks use it).
    pub fn output(&self, x: &Tensor, xi: &Tensor, body: &Tensor) -> Result<Tensor> {
        match self.residual {
            Residual::Input => x + body,
            Residual::Projected => xi + body,
            Residual::Conv(c) => super::conv2d(x, c.weight, c.bias, 1)? + body,
        }
    }

    /// The geometry of the ends for an input `[batch, in_ch, h, w]`, a
    /// growth of `growth` channels and `out` output channels; checks the
    /// shapes.
    fn geometry(
        &self,
        (batch, in_ch, h, w): (usize, usize, usize, usize),
        growth: usize,
        out: usize,
    ) -> Result<Ends> {
        let conv = |c_in, c_out| ConvGeom {
            batch,
            c_in,
            c_out,
            h,
            w,
            k: 1,
            groups: 1,
            shuffle: 1,
        };
        let head = match &self.in_conv {
            Some(l) => Some(checked_as(l, conv(in_ch, growth), "InConv")?),
            None if in_ch != growth => {
                bail!("block: {in_ch} input channels need an InConv to {growth}")
            }
            None => None,
        };
        let skip = match &self.residual {
            Residual::Input if out == in_ch => Skip::Input,
            Residual::Projected if out == growth => Skip::Projected,
            Residual::Conv(l) => Skip::Conv(checked_as(l, conv(in_ch, out), "OutConv")?),
            _ => bail!("block: the residual does not match {in_ch} input, {growth} growth and {out} output channels"),
        };
        Ok(Ends {
            in_ch,
            head,
            skip: Some(skip),
        })
    }
}

/// What [`BlockEnds`] becomes inside an op.
#[derive(Debug, Clone, Copy)]
enum Skip {
    Input,
    Projected,
    Conv(ConvGeom),
}

/// [`BlockEnds`] inside an op: the input's channels, `InConv`'s geometry
/// and the residual (none: the op returns the body or the features). The
/// ends' weights and biases follow the body's in the flat arguments,
/// `InConv`'s first.
#[derive(Debug, Clone, Copy)]
struct Ends {
    in_ch: usize,
    head: Option<ConvGeom>,
    skip: Option<Skip>,
}

impl Ends {
    /// No ends: the op's input is `xi` (`growth` channels).
    fn none(growth: usize) -> Ends {
        Ends {
            in_ch: growth,
            head: None,
            skip: None,
        }
    }

    fn out_conv(&self) -> Option<&ConvGeom> {
        match &self.skip {
            Some(Skip::Conv(g)) => Some(g),
            _ => None,
        }
    }

    /// Their convolutions: `InConv`, then `OutConv`.
    fn convs(&self) -> impl Iterator<Item = &ConvGeom> {
        self.head.iter().chain(self.out_conv())
    }

    fn w_len(&self) -> usize {
        self.convs().map(|g| g.w_len()).sum()
    }

    fn b_len(&self) -> usize {
        self.convs().map(|g| g.c_out).sum()
    }

    /// Writes `xi` (`InConv` of `x`, or `x`) into piece 0 of each image of
    /// the feature buffer `out` (`bs` elements an image).
    ///
    /// # Safety
    /// `out` holds `batch` images of `bs` elements, and piece 0 of each is
    /// this call's alone.
    unsafe fn project<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        b: Option<&[T]>,
        out: SendPtr<T>,
        bs: usize,
        piece: usize,
    ) {
        match &self.head {
            Some(g) => {
                let planes = Planes {
                    x_batch: self.in_ch * g.hw(),
                    y_batch: bs,
                };
                // SAFETY: forwarded to the caller.
                unsafe {
                    kernels::conv_forward_into(
                        x.as_ptr(),
                        &w[..g.w_len()],
                        b.map(|b| &b[..g.c_out]),
                        g,
                        false,
                        out,
                        planes,
                        false,
                    )
                };
            }
            None => {
                for (i, src) in x.chunks_exact(piece).enumerate() {
                    // SAFETY: image i's piece 0, the caller's.
                    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), out.add(i * bs), piece) };
                }
            }
        }
    }

    /// Adds the residual to the body's output `y` (`[B, O, H, W]`): `x`,
    /// `xi` (piece 0 of each image of `buf`) or `OutConv` of `x`. Each sum
    /// is `residual + body`, as the op chain adds them.
    fn add_residual<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        b: Option<&[T]>,
        buf: &[T],
        (batch, bs): (usize, usize),
        y: &mut [T],
    ) {
        let Some(skip) = &self.skip else { return };
        let per_image = y.len() / batch.max(1);
        let conv;
        let (src, stride): (&[T], usize) = match skip {
            Skip::Input => (x, per_image),
            Skip::Projected => (buf, bs),
            Skip::Conv(g) => {
                let at = self.head.map_or(0, |h| h.w_len());
                let b0 = self.head.map_or(0, |h| h.c_out);
                conv = kernels::conv_forward(
                    x,
                    &w[at..at + g.w_len()],
                    b.map(|b| &b[b0..b0 + g.c_out]),
                    g,
                    false,
                );
                (&conv[..], per_image)
            }
        };
        let dst = SendPtr(y.as_mut_ptr());
        par::for_each(
            y.len() / per_image.max(1),
            || (),
            |_, i| {
                let r = &src[i * stride..][..per_image];
                for (k, &v) in r.iter().enumerate() {
                    // SAFETY: image i of `y`, this item's alone.
                    unsafe {
                        let p = dst.add(i * per_image + k);
                        p.write(v + p.read());
                    }
                }
            },
        );
    }

    /// The gradient of the block's input from `d_xi` (that of `xi`,
    /// densely) and `g_out` (that of the output); stores the ends' weight
    /// and bias gradients through `store(layer, gradient)` (0: `InConv`,
    /// 1: `OutConv`; weights then biases).
    fn backward<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        with_bias: bool,
        mut d_xi: Vec<T>,
        g_out: &[T],
        mut store: impl FnMut(usize, &[T]),
    ) -> Vec<T> {
        if let Some(Skip::Projected) = self.skip {
            add_assign(&mut d_xi, g_out);
        }
        let dense = |g: &ConvGeom| Planes {
            x_batch: g.c_in * g.hw(),
            y_batch: g.c_out * g.hw(),
        };
        let mut d_x = match &self.head {
            Some(g) => {
                store(
                    0,
                    &kernels::conv_grad_weight_strided(x, &d_xi, g, dense(g), with_bias),
                );
                kernels::conv_grad_input(&d_xi, &w[..g.w_len()], g)
            }
            None => d_xi,
        };
        match &self.skip {
            Some(Skip::Input) => add_assign(&mut d_x, g_out),
            Some(Skip::Conv(g)) => {
                store(
                    1,
                    &kernels::conv_grad_weight_strided(x, g_out, g, dense(g), with_bias),
                );
                let at = self.head.map_or(0, |h| h.w_len());
                add_assign(
                    &mut d_x,
                    &kernels::conv_grad_input(g_out, &w[at..at + g.w_len()], g),
                );
            }
            _ => {}
        }
        d_x
    }
}

/// The start of an op's backward: its feature buffer and the buffer's
/// gradient. Without a tail the buffer is the op's output (`out`) and its
/// gradient `grad`; with one, the buffer the forward kept (`kept`) and the
/// gradient through the tail, whose weight and bias gradients go to
/// `(w_at, b_at)` of the flat result.
fn tail_backward<'a, T: Elem>(
    tail: Option<&ConvGeom>,
    kept: Option<&'a CpuStorage>,
    (out, grad): (&'a [T], &[T]),
    (w_tail, with_bias): (&[T], bool),
    flat: &mut [T],
    (w_at, b_at): (usize, usize),
) -> Result<(&'a [T], Vec<T>)> {
    let Some(tg) = tail else {
        return Ok((out, grad.to_vec()));
    };
    let Some(kept) = kept else {
        bail!("dense block: backward without the forward's features");
    };
    let buf = T::cpu_storage_as_slice(kept)?;
    let planes = Planes {
        x_batch: buf.len() / tg.batch.max(1),
        y_batch: tg.c_out * tg.hw(),
    };
    let gw = kernels::conv_grad_weight_strided(buf, grad, tg, planes, with_bias);
    flat[w_at..][..tg.w_len()].copy_from_slice(&gw[..tg.w_len()]);
    if with_bias {
        flat[b_at..][..tg.c_out].copy_from_slice(&gw[tg.w_len()..]);
    }
    // The tail's input is the whole buffer, laid out densely: its input
    // gradient is the buffer's gradient as it is.
    Ok((buf, kernels::conv_grad_input(grad, w_tail, tg)))
}

impl Ends {
    /// The end of an op's backward: `xi`'s gradient (piece 0 of each image
    /// of the buffer's gradient `dbuf`) through the ends into the flat
    /// result's first elements (the input's gradient), and the ends' weight
    /// and bias gradients at `(w_at, b_at)` of it (`InConv`'s, then
    /// `OutConv`'s).
    #[allow(clippy::too_many_arguments)]
    fn finish_backward<T: Elem>(
        &self,
        x: &[T],
        w: &[T],
        with_bias: bool,
        dbuf: &[T],
        (bs, piece): (usize, usize),
        g_out: &[T],
        flat: &mut [T],
        (w_at, b_at): (usize, usize),
    ) {
        let mut d_xi = vec![T::from_f64(0.0); dbuf.len() / bs.max(1) * piece];
        for (b, dst) in d_xi.chunks_exact_mut(piece).enumerate() {
            dst.copy_from_slice(&dbuf[b * bs..][..piece]);
        }
        let head = self.head.map_or((0, 0), |h| (h.w_len(), h.c_out));
        let d_x = self.backward(x, w, with_bias, d_xi, g_out, |layer, gw| {
            let (g, (wo, bo)) = match layer {
                0 => (self.head, (0, 0)),
                _ => (self.out_conv().copied(), head),
            };
            let Some(g) = g else { return };
            flat[w_at + wo..][..g.w_len()].copy_from_slice(&gw[..g.w_len()]);
            if with_bias {
                flat[b_at + bo..][..g.c_out].copy_from_slice(&gw[g.w_len()..]);
            }
        });
        flat[..d_x.len()].copy_from_slice(&d_x);
    }
}

/// `a += b`, element by element, on the worker threads.
fn add_assign<T: Elem>(a: &mut [T], b: &[T]) {
    debug_assert_eq!(a.len(), b.len());
    const CHUNK: usize = 1 << 14;
    let dst = SendPtr(a.as_mut_ptr());
    par::for_each(
        a.len().div_ceil(CHUNK),
        || (),
        |_, c| {
            let start = c * CHUNK;
            for (k, &v) in b[start..b.len().min(start + CHUNK)].iter().enumerate() {
                // SAFETY: chunk c of `a`, this item's alone.
                unsafe {
                    let p = dst.add(start + k);
                    p.write(p.read() + v);
                }
            }
        },
    );
}

/// A dense op's arguments as its builder uses them.
struct Unpacked<'a> {
    ends: Option<BlockEnds<'a>>,
    tail: Option<DenseLayer<'a>>,
    /// The input's `[batch, channels, h, w]`.
    dims: (usize, usize, usize, usize),
    /// Channels of each dense layer's output: `InConv`'s, else the input's.
    growth: usize,
}

impl<'a> Unpacked<'a> {
    fn new(x: &Tensor, tail: Option<(DenseLayer<'a>, Option<BlockEnds<'a>>)>) -> Result<Self> {
        let (ends, tail) = match tail {
            Some((t, e)) => (e, Some(t)),
            None => (None, None),
        };
        let dims = x.dims4()?;
        let growth = match ends.as_ref().and_then(|e| e.in_conv) {
            Some(c) => c.weight.dim(0)?,
            None => dims.1,
        };
        Ok(Unpacked {
            ends,
            tail,
            dims,
            growth,
        })
    }
}

/// The same features from per-layer convolutions and concatenations.
fn chained(xi: &Tensor, layers: &[DenseLayer]) -> Result<Tensor> {
    let mut cat = xi.clone();
    for (j, l) in layers.iter().enumerate() {
        let t = super::conv2d_shuffled_relu(&cat, l.weight, l.bias, l.groups, j + 1)?;
        cat = Tensor::cat(&[&cat, &t], 1)?;
    }
    Ok(cat)
}

/// The op; arguments `(xi, flat weights[, flat biases])`, each layer's
/// weight (and bias) after the previous one's.
#[derive(Debug, Clone)]
struct DenseGroupOp {
    /// Layer `j`'s convolution over the buffer's first `(j+1)·G` channels.
    geoms: Vec<ConvGeom>,
    with_bias: bool,
    /// The 1x1 convolution over the whole buffer whose output the op
    /// returns instead of the buffer (weights and bias after the layers').
    tail: Option<ConvGeom>,
    /// `InConv` and the residual (only with a tail); the op's input is
    /// the block's input.
    ends: Ends,
    /// Whether a backward will follow: then the buffer is kept in
    /// `features` (with a tail; without one the buffer is the output).
    keep_features: bool,
    features: std::sync::Arc<std::sync::Mutex<Option<CpuStorage>>>,
}

impl DenseGroupOp {
    fn growth(&self) -> usize {
        self.geoms[0].c_out
    }

    /// Channels of the whole buffer.
    fn channels(&self) -> usize {
        (self.geoms.len() + 1) * self.growth()
    }

    /// Elements from one image of the buffer to the next.
    fn batch_stride(&self) -> usize {
        self.channels() * self.geoms[0].hw()
    }

    /// Weights of the dense layers (the tail's follow them).
    fn w_dense(&self) -> usize {
        self.geoms.iter().map(|g| g.w_len()).sum()
    }

    /// Weights of the dense layers and the tail (the ends' follow them).
    fn w_body(&self) -> usize {
        self.w_dense() + self.tail.map_or(0, |t| t.w_len())
    }

    fn w_total(&self) -> usize {
        self.w_body() + self.ends.w_len()
    }

    /// Biases of the dense layers and the tail.
    fn b_body(&self) -> usize {
        self.growth() * self.geoms.len() + self.tail.map_or(0, |t| t.c_out)
    }

    fn out_shape(&self) -> Shape {
        let g = &self.geoms[0];
        let c = self.tail.map_or(self.channels(), |t| t.c_out);
        Shape::from((g.batch, c, g.h, g.w))
    }
}

/// Borrows a contiguous tensor's elements.
fn as_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("dense block: {what} must be contiguous"),
    }
}

/// Runs `$f::<T>` for the storage's dtype (f32 or f64).
macro_rules! dispatch {
    ($s:expr, $f:ident($($arg:expr),*)) => {
        match $s.dtype() {
            DType::F32 => $f::<f32>($($arg),*),
            DType::F64 => $f::<f64>($($arg),*),
            d => bail!("dense block: the CPU kernel handles f32 and f64, got {d:?}"),
        }
    };
}

fn forward<T: Elem>(
    op: &DenseGroupOp,
    (x, lx): (&CpuStorage, &Layout),
    (w, lw): (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    let x = as_slice::<T>(x, lx, "input")?;
    let w = as_slice::<T>(w, lw, "weights")?;
    let b = match bias {
        Some((b, lb)) => Some(as_slice::<T>(b, lb, "biases")?),
        None => None,
    };
    let first = &op.geoms[0];
    let (batch, hw, growth) = (first.batch, first.hw(), op.growth());
    let bs = op.batch_stride();
    let mut buf = OutBuf::<T>::new(batch * bs);
    if buf.is_empty() {
        return Ok((T::to_cpu_storage_owned(Vec::new()), op.out_shape()));
    }
    let out = buf.ptr();
    let piece = growth * hw;
    let (w_ends, b_ends) = (&w[op.w_body()..], b.map(|b| &b[op.b_body()..]));
    // SAFETY: piece 0 of each image, written by no one else.
    unsafe { op.ends.project(x, w_ends, b_ends, out, bs, piece) };
    let (mut w_off, mut b_off) = (0, 0);
    for (j, g) in op.geoms.iter().enumerate() {
        let wj = &w[w_off..w_off + g.w_len()];
        let bj = b.map(|b| &b[b_off..b_off + growth]);
        let planes = Planes {
            x_batch: bs,
            y_batch: bs,
        };
        // SAFETY: layer j reads each image's first (j+1)·G planes, all
        // written already (xi, then the layers before), and writes the next
        // G planes, which no one reads during the call.
        unsafe {
            let y = SendPtr(out.add((j + 1) * piece));
            kernels::conv_forward_into(out.0.cast_const(), wj, bj, g, true, y, planes, false);
        }
        w_off += g.w_len();
        b_off += growth;
    }
    // SAFETY: piece 0 copied from xi, piece j+1 written by layer j (its
    // forward writes every element of its output planes).
    let buf = unsafe { buf.assume_init() };
    let Some(tg) = &op.tail else {
        return Ok((T::to_cpu_storage_owned(buf), op.out_shape()));
    };
    let wt = &w[w_off..w_off + tg.w_len()];
    let bt = b.map(|b| &b[b_off..b_off + tg.c_out]);
    let keep = op.keep_features.then_some(&*op.features);
    let y = tail_forward(tg, &op.ends, buf, (wt, bt), (x, w_ends, b_ends), keep);
    Ok((T::to_cpu_storage_owned(y), op.out_shape()))
}

/// The end of an op's forward with a tail: the tail's 1x1 convolution over
/// the whole feature buffer, plus the residual. The buffer goes to `keep`
/// (for the backward) when given, else it is dropped.
fn tail_forward<T: Elem>(
    tg: &ConvGeom,
    ends: &Ends,
    buf: Vec<T>,
    (wt, bt): (&[T], Option<&[T]>),
    (x, w_ends, b_ends): (&[T], &[T], Option<&[T]>),
    keep: Option<&std::sync::Mutex<Option<CpuStorage>>>,
) -> Vec<T> {
    let (batch, hw) = (tg.batch, tg.hw());
    let bs = buf.len() / batch.max(1);
    let mut y = OutBuf::<T>::new(batch * tg.c_out * hw);
    let planes = Planes {
        x_batch: bs,
        y_batch: tg.c_out * hw,
    };
    // SAFETY: the buffer is whole; `y` holds the tail's output planes.
    unsafe { kernels::conv_forward_into(buf.as_ptr(), wt, bt, tg, false, y.ptr(), planes, false) };
    // SAFETY: the tail's forward writes every element of its output.
    let mut y = unsafe { y.assume_init() };
    ends.add_residual(x, w_ends, b_ends, &buf, (batch, bs), &mut y);
    if let Some(keep) = keep {
        *keep.lock().unwrap_or_else(|e| e.into_inner()) = Some(T::to_cpu_storage_owned(buf));
    }
    y
}

impl DenseGroupOp {
    fn backward(
        &self,
        xi: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The grad op reads the features from the op (with a tail) and
        // then needs the input instead.
        let first = if self.tail.is_some() { xi } else { res };
        let flat = first.contiguous()?.apply_op3_no_bwd(
            &grad.contiguous()?,
            w,
            &DenseGroupGradOp { op: self.clone() },
        )?;
        let g = &self.geoms[0];
        let x_len = g.batch * self.ends.in_ch * g.hw();
        let w_len = self.w_total();
        let dx = flat.narrow(0, 0, x_len)?.reshape(xi.shape())?;
        let dw = flat.narrow(0, x_len, w_len)?;
        let db = match bias {
            Some(b) if b.track_op() => Some(flat.narrow(0, x_len + w_len, b.elem_count())?),
            _ => None,
        };
        Ok((xi.track_op().then_some(dx), w.track_op().then_some(dw), db))
    }
}

impl CustomOp2 for DenseGroupOp {
    fn name(&self) -> &'static str {
        "esr-dense-group"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, forward(self, (s1, l1), (s2, l2), None))
    }

    fn bwd(
        &self,
        xi: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(xi, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for DenseGroupOp {
    fn name(&self) -> &'static str {
        "esr-dense-group-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, forward(self, (s1, l1), (s2, l2), Some((s3, l3))))
    }

    fn bwd(
        &self,
        xi: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(xi, w, Some(b), res, grad)
    }
}

/// Backward helper: `(features, their gradient, flat weights) → [input
/// gradient, weight gradients, bias gradients]`, flat.
struct DenseGroupGradOp {
    op: DenseGroupOp,
}

fn backward<T: Elem>(
    op: &DenseGroupOp,
    (buf, lb): (&CpuStorage, &Layout),
    (grad, lg): (&CpuStorage, &Layout),
    (w, lw): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let grad = as_slice::<T>(grad, lg, "gradient")?;
    let w = as_slice::<T>(w, lw, "weights")?;
    let first = &op.geoms[0];
    let (batch, hw, growth) = (first.batch, first.hw(), op.growth());
    let (bs, piece) = (op.batch_stride(), growth * hw);
    let (w_dense, w_body, w_total) = (op.w_dense(), op.w_body(), op.w_total());
    let b_total = if op.with_bias {
        op.b_body() + op.ends.b_len()
    } else {
        0
    };
    let x_len = batch * op.ends.in_ch * hw;
    let mut flat = vec![T::from_f64(0.0); x_len + w_total + b_total];
    let guard = op.features.lock().unwrap_or_else(|e| e.into_inner());
    // With a tail the first argument is the op's input, else its output.
    let first = as_slice::<T>(buf, lb, "input")?;
    let tail_at = (x_len + w_dense, x_len + w_total + growth * op.geoms.len());
    let (buf, mut dbuf) = tail_backward(
        op.tail.as_ref(),
        guard.as_ref(),
        (first, grad),
        (&w[w_dense..w_body], op.with_bias),
        &mut flat,
        tail_at,
    )?;
    // Layer j's output gradient through its ReLU, in place in `dbuf`: the
    // last layer's here (the tail wrote it whole), every other one as the
    // last input gradient is added into it (the next layer's, gated).
    let n = op.geoms.len();
    mask_in_place(&mut dbuf, buf, (n * piece, piece, bs));
    let mut w_end = w_dense;
    for (j, g) in op.geoms.iter().enumerate().rev() {
        let w_start = w_end - g.w_len();
        let off = (j + 1) * piece;
        let planes = Planes {
            x_batch: bs,
            y_batch: bs,
        };
        let gw = kernels::conv_grad_weight_strided(buf, &dbuf[off..], g, planes, op.with_bias);
        flat[x_len + w_start..x_len + w_end].copy_from_slice(&gw[..g.w_len()]);
        if op.with_bias {
            let b0 = x_len + w_total + j * growth;
            flat[b0..b0 + growth].copy_from_slice(&gw[g.w_len()..]);
        }
        let d = dbuf.as_mut_ptr();
        // SAFETY: `dbuf` holds `batch` images of the buffer's channels:
        // layer j's output gradient (piece j+1 of each) is read, its input
        // gradient added into the first j+1 pieces, touched by no one
        // else; `buf` (the gate) is laid out as `dbuf`.
        unsafe {
            kernels::conv_grad_input_add_gated(
                d.add(off),
                bs,
                &w[w_start..w_end],
                g,
                (SendPtr(d), bs),
                relu_gate(buf, j, growth),
            )
        };
        w_end = w_start;
    }
    let ends_at = (x_len + w_body, x_len + w_total + op.b_body());
    op.ends.finish_backward(
        first,
        &w[w_body..],
        op.with_bias,
        &dbuf,
        (bs, piece),
        grad,
        &mut flat,
        ends_at,
    );
    let n = flat.len();
    Ok((T::to_cpu_storage_owned(flat), Shape::from(n)))
}

impl CustomOp3 for DenseGroupGradOp {
    fn name(&self) -> &'static str {
        "esr-dense-group-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, backward(&self.op, (s1, l1), (s2, l2), (s3, l3)))
    }
}

/// The features of an S block's dense part, `[B, (n+1)·G, H, W]`: `xi`
/// (`[B, G, H, W]`) followed by `t_j = relu(conv3x3_j(cur_j))` for each of
/// the `n` `convs`, where `cur_0 = xi` and `cur_j = shrink_{j-1}(features[..,
/// ..(j+1)·G])` (1x1). `shrinks` are the first `n-1` shrinks; the block's
/// last one reads the returned features. Differentiable in `xi` and every
/// weight and bias; one op on the CPU, the op chain elsewhere.
///
/// With `repeat` 3 it is a C block's dense part (at the pooled
/// resolution): each 3x3 convolution is applied three times in a row,
/// shared weights and a ReLU after each, the block's "recursive" part (the
/// op keeps the intermediate outputs for the backward when gradients are
/// recorded).
pub fn dense_shrink_features(
    xi: &Tensor,
    convs: &[DenseLayer],
    shrinks: &[DenseLayer],
    repeat: usize,
) -> Result<Tensor> {
    dense_shrink(xi, convs, shrinks, None, repeat)
}

/// An S block's body: its last shrink `tail` (`[O, (n+1)·G, 1, 1]`, no
/// ReLU) over [`dense_shrink_features`], `[B, O, H, W]`; one op on the CPU,
/// for the reasons [`dense_group_body`] gives.
pub fn dense_shrink_body(
    xi: &Tensor,
    convs: &[DenseLayer],
    shrinks: &[DenseLayer],
    tail: DenseLayer,
) -> Result<Tensor> {
    dense_shrink(xi, convs, shrinks, Some((tail, None)), 1)
}

/// A whole S block, `[B, O, H, W]` from its input `x`: `InConv`,
/// [`dense_shrink_body`] and the residual (`ends`); one op on the CPU, for
/// the reasons [`dense_group_block`] gives.
pub fn dense_shrink_block(
    x: &Tensor,
    ends: BlockEnds,
    convs: &[DenseLayer],
    shrinks: &[DenseLayer],
    tail: DenseLayer,
) -> Result<Tensor> {
    dense_shrink(x, convs, shrinks, Some((tail, Some(ends))), 1)
}

fn dense_shrink(
    x: &Tensor,
    convs: &[DenseLayer],
    shrinks: &[DenseLayer],
    tail: Option<(DenseLayer, Option<BlockEnds>)>,
    repeat: usize,
) -> Result<Tensor> {
    let Unpacked {
        ends,
        tail,
        dims: (batch, in_ch, h, w),
        growth,
    } = Unpacked::new(x, tail)?;
    if repeat == 0 {
        bail!("dense S block: each convolution must be applied at least once (repeat 0)");
    }
    if convs.is_empty() || shrinks.len() + 1 != convs.len() {
        bail!(
            "dense S block: {} convolutions need {} shrinks before the last, got {}",
            convs.len(),
            convs.len().saturating_sub(1),
            shrinks.len()
        );
    }
    let all = || {
        convs
            .iter()
            .chain(shrinks)
            .chain(&tail)
            .chain(ends.iter().flat_map(|e| e.layers()))
    };
    let with_bias = convs[0].bias.is_some();
    let fused = x.device().is_cpu()
        && all().all(|l| l.weight.device().is_cpu() && l.bias.is_some() == with_bias)
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && super::custom_kernels_enabled()
        && super::relu_fusion_enabled();
    let xi = match (&ends, fused) {
        (Some(e), false) => e.project(x)?,
        _ => x.clone(),
    };
    if !fused {
        let mut cat = xi.clone();
        let mut cur = xi.clone();
        for (j, c) in convs.iter().enumerate() {
            let mut t = cur.clone();
            for _ in 0..repeat {
                t = super::conv2d_relu(&t, c.weight, c.bias, 1)?;
            }
            cat = Tensor::cat(&[&cat, &t], 1)?;
            if let Some(s) = shrinks.get(j) {
                cur = super::conv2d(&cat, s.weight, s.bias, 1)?;
            }
        }
        let Some(t) = tail else {
            return Ok(cat);
        };
        let body = super::conv2d(&cat, t.weight, t.bias, 1)?;
        return match &ends {
            Some(e) => e.output(x, &xi, &body),
            None => Ok(body),
        };
    }
    let geom = |c_in: usize, k: usize| ConvGeom {
        batch,
        c_in,
        c_out: growth,
        h,
        w,
        k,
        groups: 1,
        shuffle: 1,
    };
    let mut conv_geoms = Vec::with_capacity(convs.len());
    let mut shrink_geoms = Vec::with_capacity(shrinks.len());
    for (j, l) in convs.iter().enumerate() {
        conv_geoms.push(checked(l, geom(growth, 3), j)?);
    }
    for (j, l) in shrinks.iter().enumerate() {
        shrink_geoms.push(checked(l, geom((j + 2) * growth, 1), j)?);
    }
    let tail_geom = match tail {
        Some(t) => {
            let g = ConvGeom {
                c_in: (convs.len() + 1) * growth,
                c_out: t.weight.dim(0)?,
                ..geom(growth, 1)
            };
            Some(checked_as(&t, g, "the block's last 1x1 convolution")?)
        }
        None => None,
    };
    let op_ends = match (&ends, &tail_geom) {
        (Some(e), Some(t)) => e.geometry((batch, in_ch, h, w), growth, t.c_out)?,
        _ => Ends::none(growth),
    };
    super::alloc::tune_allocator();
    let keep_curs = xi.track_op() || all().any(|l| l.weight.track_op());
    let op = DenseShrinkOp {
        convs: conv_geoms,
        shrinks: shrink_geoms,
        with_bias,
        tail: tail_geom,
        ends: op_ends,
        repeat,
        keep_curs,
        curs: Default::default(),
        features: Default::default(),
    };
    let xi = xi.contiguous()?;
    let weights = Tensor::cat(
        &all()
            .map(|l| l.weight.flatten_all())
            .collect::<Result<Vec<_>>>()?,
        0,
    )?;
    if with_bias {
        let biases: Vec<Tensor> = all().filter_map(|l| l.bias.cloned()).collect();
        xi.apply_op3(&weights, &Tensor::cat(&biases, 0)?, op)
    } else {
        xi.apply_op2(&weights, op)
    }
}

/// `g` when layer `j`'s weight and bias have its shapes.
fn checked(l: &DenseLayer, g: ConvGeom, j: usize) -> Result<ConvGeom> {
    checked_as(l, g, &format!("dense layer {j}"))
}

/// `g` when the weight and bias of `l` (called `what` in errors) have its
/// shapes.
fn checked_as(l: &DenseLayer, g: ConvGeom, what: &str) -> Result<ConvGeom> {
    let want = [g.c_out, g.c_in, g.k, g.k];
    if l.weight.dims() != want || l.groups != 1 {
        bail!(
            "{what}: expected an ungrouped weight {want:?}, got {:?} in {} groups",
            l.weight.dims(),
            l.groups
        );
    }
    if l.bias.is_some_and(|b| b.dims() != [g.c_out]) {
        bail!("{what}: bias must be [{}]", g.c_out);
    }
    Ok(g)
}

/// The S block op; arguments `(xi, flat weights[, flat biases])`: the
/// convolutions' in order, then the shrinks'.
#[derive(Debug, Clone)]
struct DenseShrinkOp {
    convs: Vec<ConvGeom>,
    shrinks: Vec<ConvGeom>,
    with_bias: bool,
    /// Whether a backward will follow: then every `cur` is kept, else one
    /// slot is reused (inference holds no more than the op chain would).
    keep_curs: bool,
    /// `cur_1 ..` of the forward, `[n-1, B, G, H, W]`, kept for the
    /// backward (each is the input of a convolution; recomputing them would
    /// cost a 1x1 convolution each).
    curs: std::sync::Arc<std::sync::Mutex<Option<CpuStorage>>>,
    /// The 1x1 convolution over the whole buffer whose output the op
    /// returns instead of the buffer (weights and bias after the shrinks').
    tail: Option<ConvGeom>,
    /// With a tail and a backward to follow: the buffer.
    features: std::sync::Arc<std::sync::Mutex<Option<CpuStorage>>>,
    /// `InConv` and the residual (only with a tail); the op's input is
    /// the block's input.
    ends: Ends,
    /// Applications of each 3x3 convolution, one after the other with its
    /// ReLU: 1 (S blocks) or 3 (the dense part of a C block).
    repeat: usize,
}

impl DenseShrinkOp {
    fn growth(&self) -> usize {
        self.convs[0].c_out
    }
    fn piece(&self) -> usize {
        self.growth() * self.convs[0].hw()
    }
    fn batch_stride(&self) -> usize {
        (self.convs.len() + 1) * self.piece()
    }
    fn out_shape(&self) -> Shape {
        let g = &self.convs[0];
        let c = self
            .tail
            .map_or((self.convs.len() + 1) * g.c_out, |t| t.c_out);
        Shape::from((g.batch, c, g.h, g.w))
    }
    /// Weights of the convolutions, shrinks and tail (the ends' follow).
    fn w_body(&self) -> usize {
        let (offs, total) = self.w_offsets();
        let body = self.convs.len() + self.shrinks.len() + usize::from(self.tail.is_some());
        offs.get(body).copied().unwrap_or(total)
    }
    /// Biases of the convolutions, shrinks and tail (the ends' follow).
    fn b_body(&self) -> usize {
        self.growth() * (self.convs.len() + self.shrinks.len()) + self.tail.map_or(0, |t| t.c_out)
    }
    /// Offsets of each layer's weight in the flat weights (convolutions,
    /// then shrinks, then the tail, then `InConv` and `OutConv`), and the
    /// total.
    fn w_offsets(&self) -> (Vec<usize>, usize) {
        let mut offs = Vec::new();
        let mut at = 0;
        for g in self
            .convs
            .iter()
            .chain(&self.shrinks)
            .chain(&self.tail)
            .chain(self.ends.convs())
        {
            offs.push(at);
            at += g.w_len();
        }
        (offs, at)
    }
}

fn shrink_forward<T: Elem>(
    op: &DenseShrinkOp,
    (x, lx): (&CpuStorage, &Layout),
    (w, lw): (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    let x = as_slice::<T>(x, lx, "input")?;
    let w = as_slice::<T>(w, lw, "weights")?;
    let b = match bias {
        Some((b, lb)) => Some(as_slice::<T>(b, lb, "biases")?),
        None => None,
    };
    let (n, growth, piece, bs) = (op.convs.len(), op.growth(), op.piece(), op.batch_stride());
    let batch = op.convs[0].batch;
    let mut buf = OutBuf::<T>::new(batch * bs);
    let slots = if op.keep_curs { n - 1 } else { (n - 1).min(1) };
    let slot = |j: usize| if op.keep_curs { j } else { 0 };
    // After the curs: the outputs of every application of a convolution
    // but its last (C blocks apply each three times).
    let r = op.repeat;
    let mid_slots = if op.keep_curs { n * (r - 1) } else { r - 1 };
    let mid = |j: usize, k: usize| slots + if op.keep_curs { j * (r - 1) + k } else { k };
    let mut curs = OutBuf::<T>::new((slots + mid_slots) * batch * piece);
    if buf.is_empty() {
        return Ok((T::to_cpu_storage_owned(Vec::new()), op.out_shape()));
    }
    let (out, cur) = (buf.ptr(), curs.ptr());
    let (w_ends, b_ends) = (&w[op.w_body()..], b.map(|b| &b[op.b_body()..]));
    // SAFETY: piece 0 of each image, written by no one else.
    unsafe { op.ends.project(x, w_ends, b_ends, out, bs, piece) };
    let (offs, _) = op.w_offsets();
    let layer = |i: usize, g: &ConvGeom| {
        let wi = &w[offs[i]..offs[i] + g.w_len()];
        (wi, b.map(|b| &b[i * growth..(i + 1) * growth]))
    };
    for (j, g) in op.convs.iter().enumerate() {
        let (wj, bj) = layer(j, g);
        // SAFETY: the input (xi in piece 0, or cur_j written by the shrink
        // before) is initialised and unchanged; the output is features
        // piece j+1, which no one else reads or writes meanwhile. Then
        // shrink j reads pieces 0..=j+1 and writes cur_{j+1}, a separate
        // buffer.
        unsafe {
            let (mut src, mut x_batch) = if j == 0 {
                (out.0.cast_const(), bs)
            } else {
                (cur.add(slot(j - 1) * batch * piece).cast_const(), piece)
            };
            for k in 0..r {
                let (y, y_batch) = if k + 1 == r {
                    (SendPtr(out.add((j + 1) * piece)), bs)
                } else {
                    (SendPtr(cur.add(mid(j, k) * batch * piece)), piece)
                };
                let planes = Planes { x_batch, y_batch };
                kernels::conv_forward_into(src, wj, bj, g, true, y, planes, false);
                (src, x_batch) = (y.0.cast_const(), y_batch);
            }
            if let Some(gs) = op.shrinks.get(j) {
                let (ws, bsh) = layer(n + j, gs);
                let planes = Planes {
                    x_batch: bs,
                    y_batch: piece,
                };
                // Without a backward, cur_{j-1} is dead once conv j ran.
                let y = SendPtr(cur.add(slot(j) * batch * piece));
                kernels::conv_forward_into(
                    out.0.cast_const(),
                    ws,
                    bsh,
                    gs,
                    false,
                    y,
                    planes,
                    false,
                );
            }
        }
    }
    // SAFETY: every piece and every cur written above, whole.
    let (buf, curs) = unsafe { (buf.assume_init(), curs.assume_init()) };
    *op.curs.lock().unwrap_or_else(|e| e.into_inner()) = Some(T::to_cpu_storage_owned(curs));
    let Some(tg) = &op.tail else {
        return Ok((T::to_cpu_storage_owned(buf), op.out_shape()));
    };
    let i = n + op.shrinks.len();
    let (wt, bt) = (
        &w[offs[i]..offs[i] + tg.w_len()],
        b.map(|b| &b[i * growth..][..tg.c_out]),
    );
    let keep = op.keep_curs.then_some(&*op.features);
    let y = tail_forward(tg, &op.ends, buf, (wt, bt), (x, w_ends, b_ends), keep);
    Ok((T::to_cpu_storage_owned(y), op.out_shape()))
}

/// Features piece `off..off+piece` of each image of `dbuf` through the
/// ReLU that made it: kept where the stored output `buf` is positive, else
/// 0.
fn mask_in_place<T: Elem>(dbuf: &mut [T], buf: &[T], (off, piece, bs): (usize, usize, usize)) {
    debug_assert_eq!(dbuf.len(), buf.len());
    let (d, by) = (SendPtr(dbuf.as_mut_ptr()), SendPtr(buf.as_ptr().cast_mut()));
    // SAFETY: `dbuf` is borrowed mutably here and `buf` is laid out alike.
    unsafe { kernels::keep_where_positive(d, by, (dbuf.len() / bs.max(1), bs), (off, piece)) };
}

/// The gate that masks features piece `j` (the output of layer `j - 1`,
/// stored planes `j·growth..(j+1)·growth`) by its ReLU as the last
/// gradient is added into it; none for piece 0, the block's input.
fn relu_gate<T: Elem>(buf: &[T], j: usize, growth: usize) -> Option<Gate<T>> {
    (j > 0).then(|| Gate {
        by: SendPtr(buf.as_ptr().cast_mut()),
        first: j * growth,
        end: (j + 1) * growth,
    })
}

fn shrink_backward<T: Elem>(
    op: &DenseShrinkOp,
    (buf, lb): (&CpuStorage, &Layout),
    (grad, lg): (&CpuStorage, &Layout),
    (w, lw): (&CpuStorage, &Layout),
) -> Result<(CpuStorage, Shape)> {
    let grad = as_slice::<T>(grad, lg, "gradient")?;
    let w = as_slice::<T>(w, lw, "weights")?;
    let guard = op.curs.lock().unwrap_or_else(|e| e.into_inner());
    let Some(curs) = guard.as_ref().filter(|_| op.keep_curs) else {
        bail!("dense S block: backward without the forward's intermediate features");
    };
    let curs = T::cpu_storage_as_slice(curs)?;
    let (n, growth, piece, bs) = (op.convs.len(), op.growth(), op.piece(), op.batch_stride());
    let batch = op.convs[0].batch;
    let (offs, w_total) = op.w_offsets();
    let (hw, xi_len) = (op.convs[0].hw(), batch * piece);
    // The flat result starts with the gradient of the op's input.
    let x_len = batch * op.ends.in_ch * hw;
    let b_total = if op.with_bias {
        op.b_body() + op.ends.b_len()
    } else {
        0
    };
    let mut flat = vec![T::from_f64(0.0); x_len + w_total + b_total];
    let features = op.features.lock().unwrap_or_else(|e| e.into_inner());
    // With a tail the first argument is the op's input, else its output.
    let first = as_slice::<T>(buf, lb, "input")?;
    // The tail's weights, if any, are the last before the ends'.
    let (i, w_body) = (n + op.shrinks.len(), op.w_body());
    let w_tail_at = offs.get(i).copied().unwrap_or(w_body);
    let w_tail = &w[w_tail_at..w_body];
    let tail_at = (x_len + w_tail_at, x_len + w_total + i * growth);
    let (buf, mut dbuf) = tail_backward(
        op.tail.as_ref(),
        features.as_ref(),
        (first, grad),
        (w_tail, op.with_bias),
        &mut flat,
        tail_at,
    )?;
    // Layer i's weight (and bias) gradient into the flat result.
    let mut store = |i: usize, g: &ConvGeom, gw: &[T]| {
        flat[x_len + offs[i]..][..g.w_len()].copy_from_slice(&gw[..g.w_len()]);
        if op.with_bias {
            flat[x_len + w_total + i * growth..][..growth].copy_from_slice(&gw[g.w_len()..]);
        }
    };
    let w_of = |i: usize, g: &ConvGeom| &w[offs[i]..offs[i] + g.w_len()];
    let r = op.repeat;
    // Conv j's output gradient through its ReLU, in place in `dbuf`: the
    // last conv's here (the tail wrote it whole), every other one as the
    // last input gradient is added into it (shrink j-1's, gated).
    mask_in_place(&mut dbuf, buf, (n * piece, piece, bs));
    // Repeated convolutions (C blocks) replace the gradient application by
    // application: they start from a dense copy of it.
    let mut dt = if r > 1 {
        vec![T::from_f64(0.0); xi_len]
    } else {
        Vec::new()
    };
    for (j, g) in op.convs.iter().enumerate().rev() {
        let off = (j + 1) * piece;
        let dense = Planes {
            x_batch: piece,
            y_batch: piece,
        };
        // Applications r-1 .. 1 of a repeated convolution (C blocks): each
        // one's weight gradient, summed last first as candle's graph sums
        // them, and the gradient through the ReLU of its input.
        let mut repeated: Option<Vec<T>> = None;
        if r > 1 {
            for (b, to) in dt.chunks_exact_mut(piece).enumerate() {
                to.copy_from_slice(&dbuf[b * bs + off..][..piece]);
            }
        }
        for k in (1..r).rev() {
            let input = &curs[(n - 1 + j * (r - 1) + k - 1) * xi_len..][..xi_len];
            let gw = kernels::conv_grad_weight_strided(input, &dt, g, dense, op.with_bias);
            repeated = Some(match repeated {
                None => gw,
                Some(mut sum) => {
                    add_assign(&mut sum, &gw);
                    sum
                }
            });
            dt = kernels::relu_grad(&kernels::conv_grad_input(&dt, w_of(j, g), g), input);
        }
        let summed = |gw: Vec<T>| match repeated {
            None => gw,
            Some(mut sum) => {
                add_assign(&mut sum, &gw);
                sum
            }
        };
        // The last application's output gradient: `dt`, or piece j+1 of
        // `dbuf` in place (images `bs` apart).
        let (grad_at, grad_batch) = if r > 1 {
            (None, piece)
        } else {
            (Some(off), bs)
        };
        let grad = match grad_at {
            Some(at) => &dbuf[at..],
            None => &dt[..],
        };
        // Conv j's input: the block's input (piece 0 of the features) or
        // cur_j.
        let (x, x_batch) = match j {
            0 => (buf, bs),
            _ => (&curs[(j - 1) * xi_len..][..xi_len], piece),
        };
        let planes = Planes {
            x_batch,
            y_batch: grad_batch,
        };
        let gw = kernels::conv_grad_weight_strided(x, grad, g, planes, op.with_bias);
        store(j, g, &summed(gw));
        if j == 0 {
            let d = dbuf.as_mut_ptr();
            // SAFETY: `dbuf` holds `batch` images of the features; piece 0
            // of each (the input's gradient) is updated here alone, from
            // `dt` or piece 1.
            unsafe {
                let grad = grad_at.map_or(dt.as_ptr(), |at| d.add(at).cast_const());
                kernels::conv_grad_input_add_gated(
                    grad,
                    grad_batch,
                    w_of(j, g),
                    g,
                    (SendPtr(d), bs),
                    None,
                )
            };
            continue;
        }
        let dcur = kernels::conv_grad_input_strided(grad, grad_batch, w_of(j, g), g);
        // cur_j came from shrink j-1 over features pieces 0..=j.
        let gs = &op.shrinks[j - 1];
        let planes = Planes {
            x_batch: bs,
            y_batch: piece,
        };
        store(
            n + j - 1,
            gs,
            &kernels::conv_grad_weight_strided(buf, &dcur, gs, planes, op.with_bias),
        );
        // SAFETY: as above, the first j+1 pieces of each image of `dbuf`;
        // `dcur` is a separate buffer, `buf` (the gate) laid out as `dbuf`.
        unsafe {
            kernels::conv_grad_input_add_gated(
                dcur.as_ptr(),
                piece,
                w_of(n + j - 1, gs),
                gs,
                (SendPtr(dbuf.as_mut_ptr()), bs),
                relu_gate(buf, j, growth),
            )
        };
    }
    let ends_at = (x_len + w_body, x_len + w_total + op.b_body());
    op.ends.finish_backward(
        first,
        &w[w_body..],
        op.with_bias,
        &dbuf,
        (bs, piece),
        grad,
        &mut flat,
        ends_at,
    );
    let len = flat.len();
    Ok((T::to_cpu_storage_owned(flat), Shape::from(len)))
}

impl DenseShrinkOp {
    fn backward(
        &self,
        xi: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The grad op reads the features from the op (with a tail) and
        // then needs the input instead.
        let first = if self.tail.is_some() { xi } else { res };
        let flat = first.contiguous()?.apply_op3_no_bwd(
            &grad.contiguous()?,
            w,
            &DenseShrinkGradOp { op: self.clone() },
        )?;
        let g = &self.convs[0];
        let x_len = g.batch * self.ends.in_ch * g.hw();
        let (_, w_len) = self.w_offsets();
        let dx = flat.narrow(0, 0, x_len)?.reshape(xi.shape())?;
        let dw = flat.narrow(0, x_len, w_len)?;
        let db = match bias {
            Some(b) if b.track_op() => Some(flat.narrow(0, x_len + w_len, b.elem_count())?),
            _ => None,
        };
        Ok((xi.track_op().then_some(dx), w.track_op().then_some(dw), db))
    }
}

impl CustomOp2 for DenseShrinkOp {
    fn name(&self) -> &'static str {
        "esr-dense-shrink"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, shrink_forward(self, (s1, l1), (s2, l2), None))
    }

    fn bwd(
        &self,
        xi: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(xi, w, None, res, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for DenseShrinkOp {
    fn name(&self) -> &'static str {
        "esr-dense-shrink-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, shrink_forward(self, (s1, l1), (s2, l2), Some((s3, l3))))
    }

    fn bwd(
        &self,
        xi: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(xi, w, Some(b), res, grad)
    }
}

/// Backward helper of [`DenseShrinkOp`], like [`DenseGroupGradOp`].
struct DenseShrinkGradOp {
    op: DenseShrinkOp,
}

impl CustomOp3 for DenseShrinkGradOp {
    fn name(&self) -> &'static str {
        "esr-dense-shrink-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        dispatch!(s1, shrink_backward(&self.op, (s1, l1), (s2, l2), (s3, l3)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Every tensor of `tracked` has the same gradient in `fused` and
    /// `plain` (to 1e-10); `what` names the case.
    fn assert_same_grads(
        fused: &candle_core::backprop::GradStore,
        plain: &candle_core::backprop::GradStore,
        tracked: &[&Tensor],
        what: &str,
    ) -> Result<()> {
        for t in tracked {
            let (a, b) = (
                fused
                    .get(t)
                    .unwrap_or_else(|| panic!("{what}: no fused gradient of {:?}", t.dims())),
                plain.get(t).expect("plain grad"),
            );
            let e = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
            assert!(
                e < 1e-10,
                "{what}: gradient of {:?} differs by {e}",
                t.dims()
            );
        }
        Ok(())
    }

    fn ramp(dims: &[usize], seed: f64) -> Result<Var> {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37 + seed).sin()).collect();
        Var::from_tensor(&Tensor::from_vec(v, dims, &Device::Cpu)?)
    }

    /// The fused op against the op-by-op chain: features and the gradients
    /// of a weighted sum of them, for the input, every weight and bias.
    fn check(growth: usize, groups: &[usize], bias: bool) -> Result<()> {
        let (batch, h, w) = (2, 5, 4);
        let xi = ramp(&[batch, growth, h, w], 0.1)?;
        let mut params = Vec::new();
        for (j, &grp) in groups.iter().enumerate() {
            let c_in = (j + 1) * growth;
            let wt = ramp(&[growth, c_in / grp, 3, 3], j as f64)?;
            let b = if bias {
                Some(ramp(&[growth], 2.0 + j as f64)?)
            } else {
                None
            };
            params.push((wt, b, grp));
        }
        let layers: Vec<DenseLayer> = params
            .iter()
            .map(|(wt, b, grp)| DenseLayer {
                weight: wt.as_tensor(),
                bias: b.as_ref().map(|b| b.as_tensor()),
                groups: *grp,
            })
            .collect();
        // The body's last 1x1 convolution, to 5 channels.
        let channels = (groups.len() + 1) * growth;
        let tail_w = ramp(&[5, channels, 1, 1], 4.0)?;
        let tail_b = if bias { Some(ramp(&[5], 5.0)?) } else { None };
        let tail = DenseLayer {
            weight: tail_w.as_tensor(),
            bias: tail_b.as_ref().map(|b| b.as_tensor()),
            groups: 1,
        };
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        let mut tracked: Vec<&Tensor> = vec![xi.as_tensor()];
        for (wt, b, _) in &params {
            tracked.push(wt.as_tensor());
            tracked.extend(b.as_ref().map(|b| b.as_tensor()));
        }
        // With the tail fused: the body and every gradient, and the body
        // without gradients (inference keeps no features).
        let plain = chained(&xi, &layers)?;
        let plain_body = super::super::conv2d(&plain, tail.weight, tail.bias, 1)?;
        let body = dense_group_body(&xi, &layers, tail)?;
        assert_eq!(body.dims(), [batch, 5, h, w]);
        assert!(diff(&body, &plain_body)? < 1e-12, "bodies differ");
        let detached: Vec<(Tensor, Option<Tensor>)> = layers
            .iter()
            .chain([&tail])
            .map(|l| (l.weight.detach(), l.bias.map(|b| b.detach())))
            .collect();
        let frozen_layers: Vec<DenseLayer> = detached
            .iter()
            .zip(layers.iter().chain([&tail]))
            .map(|((wt, b), l)| DenseLayer {
                weight: wt,
                bias: b.as_ref(),
                groups: l.groups,
            })
            .collect();
        let (frozen_tail, frozen_dense) = frozen_layers.split_last().expect("a tail");
        let frozen = dense_group_body(&xi.as_tensor().detach(), frozen_dense, *frozen_tail)?;
        assert!(
            diff(&frozen, &plain_body)? < 1e-12,
            "inference bodies differ"
        );
        let mix = ramp(body.dims(), 0.3)?;
        let loss = |t: &Tensor| (t * mix.as_tensor())?.sum_all();
        let (gf, gp) = (loss(&body)?.backward()?, loss(&plain_body)?.backward()?);
        let mut with_tail = tracked.clone();
        with_tail.push(tail_w.as_tensor());
        with_tail.extend(tail_b.as_ref().map(|b| b.as_tensor()));
        assert_same_grads(&gf, &gp, &with_tail, "G body")?;
        // The features alone.
        let fused = dense_group_features(&xi, &layers)?;
        let mix = ramp(fused.dims(), 0.7)?;
        let loss = |t: &Tensor| (t * mix.as_tensor())?.sum_all();
        let (gf, gp) = (loss(&fused)?.backward()?, loss(&plain)?.backward()?);
        assert!(diff(&fused, &plain)? < 1e-12, "features differ");
        assert_same_grads(&gf, &gp, &tracked, "G features")?;
        Ok(())
    }

    /// A whole G or S block (`InConv`, dense part, last 1x1 convolution,
    /// residual) as one op against the op chain: output and every
    /// gradient, for each kind of residual, with and without `InConv` and
    /// biases.
    fn check_block(
        shrink: bool,
        in_ch: usize,
        growth: usize,
        out: usize,
        bias: bool,
    ) -> Result<()> {
        let (batch, h, w) = (2, 4, 5);
        let x = ramp(&[batch, in_ch, h, w], 0.15)?;
        let groups = if shrink { [1, 1, 1] } else { [1, 2, 2] };
        let mut vars = Vec::new();
        let mut add = |shape: Vec<usize>, c_out: usize, seed: f64| -> Result<usize> {
            let b = if bias {
                Some(ramp(&[c_out], seed + 0.5)?)
            } else {
                None
            };
            vars.push((ramp(&shape, seed)?, b));
            Ok(vars.len() - 1)
        };
        let mut dense = Vec::new();
        for (j, &grp) in groups.iter().enumerate() {
            let c_in = if shrink { growth } else { (j + 1) * growth };
            dense.push(add(vec![growth, c_in / grp, 3, 3], growth, j as f64)?);
        }
        let mut inner = Vec::new();
        for j in 0..if shrink { groups.len() - 1 } else { 0 } {
            inner.push(add(
                vec![growth, (j + 2) * growth, 1, 1],
                growth,
                3.0 + j as f64,
            )?);
        }
        let lff = add(vec![out, (groups.len() + 1) * growth, 1, 1], out, 7.0)?;
        let in_conv = (in_ch != growth)
            .then(|| add(vec![growth, in_ch, 1, 1], growth, 8.0))
            .transpose()?;
        let out_conv = (out != in_ch && out != growth)
            .then(|| add(vec![out, in_ch, 1, 1], out, 9.0))
            .transpose()?;
        let layer = |i: usize, groups: usize| DenseLayer {
            weight: vars[i].0.as_tensor(),
            bias: vars[i].1.as_ref().map(|b| b.as_tensor()),
            groups,
        };
        let layers: Vec<DenseLayer> = dense
            .iter()
            .zip(groups)
            .map(|(&i, g)| layer(i, g))
            .collect();
        let shrinks: Vec<DenseLayer> = inner.iter().map(|&i| layer(i, 1)).collect();
        let residual = if out == in_ch {
            Residual::Input
        } else if out == growth {
            Residual::Projected
        } else {
            Residual::Conv(layer(out_conv.expect("an OutConv"), 1))
        };
        let ends = BlockEnds {
            in_conv: in_conv.map(|i| layer(i, 1)),
            residual,
        };
        let tail = layer(lff, 1);
        let xi = ends.project(&x)?;
        let (fused, features) = if shrink {
            (
                dense_shrink_block(&x, ends, &layers, &shrinks, tail)?,
                dense_shrink(&xi, &layers, &shrinks, None, 1)?,
            )
        } else {
            (
                dense_group_block(&x, ends, &layers, tail)?,
                chained(&xi, &layers)?,
            )
        };
        let body = super::super::conv2d(&features, tail.weight, tail.bias, 1)?;
        let plain = ends.output(&x, &xi, &body)?;
        assert_eq!(fused.dims(), [batch, out, h, w]);
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        assert!(diff(&fused, &plain)? < 1e-12, "block outputs differ");
        let mix = ramp(fused.dims(), 0.6)?;
        let loss = |t: &Tensor| (t * mix.as_tensor())?.sum_all();
        let (gf, gp) = (loss(&fused)?.backward()?, loss(&plain)?.backward()?);
        let mut tracked: Vec<&Tensor> = vec![x.as_tensor()];
        for (wt, b) in &vars {
            tracked.push(wt.as_tensor());
            tracked.extend(b.as_ref().map(|b| b.as_tensor()));
        }
        for t in tracked {
            let (a, b) = (
                gf.get(t).unwrap_or_else(|| {
                    panic!(
                        "fused grad of {:?} in {in_ch}->{growth}->{out} (S: {shrink})",
                        t.dims()
                    )
                }),
                gp.get(t).expect("plain grad"),
            );
            let e = diff(a, b)?;
            assert!(
                e < 1e-10,
                "block {in_ch}->{growth}->{out} (S: {shrink}): gradient of {:?} differs by {e}",
                t.dims()
            );
        }
        Ok(())
    }

    #[test]
    fn fused_whole_blocks_match_the_op_chain() -> Result<()> {
        // (input, growth, output): InConv or not; residual the input, the
        // projected input or OutConv.
        for shrink in [false, true] {
            for (in_ch, growth, out) in [(4, 4, 4), (6, 4, 6), (6, 4, 4), (6, 4, 5), (4, 4, 6)] {
                check_block(shrink, in_ch, growth, out, true)?;
            }
            check_block(shrink, 6, 4, 5, false)?;
        }
        Ok(())
    }

    #[test]
    fn fused_dense_block_matches_the_op_chain() -> Result<()> {
        check(4, &[1, 2, 2, 4], true)?;
        check(8, &[1, 2], false)?;
        check(3, &[1], true)
    }

    /// The S op against its op chain, as [`check`].
    /// `repeat`: applications of each 3x3 convolution (3: a C block's
    /// dense part, `repeat` of [`dense_shrink_features`]).
    fn check_shrink(growth: usize, n: usize, bias: bool, repeat: usize) -> Result<()> {
        let (batch, h, w) = (2, 4, 5);
        let xi = ramp(&[batch, growth, h, w], 0.2)?;
        let mut vars = Vec::new();
        let mut shapes = Vec::new();
        for _ in 0..n {
            shapes.push(vec![growth, growth, 3, 3]);
        }
        for j in 0..n - 1 {
            shapes.push(vec![growth, (j + 2) * growth, 1, 1]);
        }
        for (i, sh) in shapes.iter().enumerate() {
            let wt = ramp(sh, 0.5 * i as f64)?;
            let b = if bias {
                Some(ramp(&[growth], 3.0 + i as f64)?)
            } else {
                None
            };
            vars.push((wt, b));
        }
        let layers: Vec<DenseLayer> = vars
            .iter()
            .map(|(wt, b)| DenseLayer {
                weight: wt.as_tensor(),
                bias: b.as_ref().map(|b| b.as_tensor()),
                groups: 1,
            })
            .collect();
        let (convs, shrinks) = layers.split_at(n);
        let features = |xi: &Tensor, convs: &[DenseLayer], shrinks: &[DenseLayer]| {
            dense_shrink_features(xi, convs, shrinks, repeat)
        };
        let fused = features(&xi, convs, shrinks)?;
        let mut cat = xi.as_tensor().clone();
        let mut cur = cat.clone();
        for (j, c) in convs.iter().enumerate() {
            let mut t = cur.clone();
            for _ in 0..repeat {
                t = super::super::conv2d_relu(&t, c.weight, c.bias, 1)?;
            }
            cat = Tensor::cat(&[&cat, &t], 1)?;
            if let Some(s) = shrinks.get(j) {
                cur = super::super::conv2d(&cat, s.weight, s.bias, 1)?;
            }
        }
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        // The body (S blocks): the last shrink (to 3 channels) fused,
        // against the chain's features and a convolution; its gradients.
        if repeat == 1 {
            let tail_w = ramp(&[3, (n + 1) * growth, 1, 1], 6.0)?;
            let tail_b = if bias { Some(ramp(&[3], 7.0)?) } else { None };
            let tail = DenseLayer {
                weight: tail_w.as_tensor(),
                bias: tail_b.as_ref().map(|b| b.as_tensor()),
                groups: 1,
            };
            let body = dense_shrink_body(&xi, convs, shrinks, tail)?;
            let plain_body = super::super::conv2d(&cat, tail.weight, tail.bias, 1)?;
            assert_eq!(body.dims(), [batch, 3, h, w]);
            assert!(diff(&body, &plain_body)? < 1e-12, "bodies differ");
            let mix = ramp(body.dims(), 0.4)?;
            let loss = |t: &Tensor| (t * mix.as_tensor())?.sum_all();
            let (gf, gp) = (loss(&body)?.backward()?, loss(&plain_body)?.backward()?);
            let mut tracked: Vec<&Tensor> = vec![xi.as_tensor(), tail_w.as_tensor()];
            tracked.extend(tail_b.as_ref().map(|b| b.as_tensor()));
            for (wt, b) in &vars {
                tracked.push(wt.as_tensor());
                tracked.extend(b.as_ref().map(|b| b.as_tensor()));
            }
            assert_same_grads(&gf, &gp, &tracked, "S body")?;
        }
        let mix = ramp(fused.dims(), 0.9)?;
        let loss = |t: &Tensor| (t * mix.as_tensor())?.sum_all();
        let (gf, gp) = (loss(&fused)?.backward()?, loss(&cat)?.backward()?);
        assert!(diff(&fused, &cat)? < 1e-12, "features differ");
        // Without gradients (inference) the op reuses one slot for `cur`.
        let frozen: Vec<(Tensor, Option<Tensor>)> = vars
            .iter()
            .map(|(wt, b)| {
                (
                    wt.as_tensor().detach(),
                    b.as_ref().map(|b| b.as_tensor().detach()),
                )
            })
            .collect();
        let frozen_layers: Vec<DenseLayer> = frozen
            .iter()
            .map(|(wt, b)| DenseLayer {
                weight: wt,
                bias: b.as_ref(),
                groups: 1,
            })
            .collect();
        let (fc, fs) = frozen_layers.split_at(n);
        let inferred = features(&xi.as_tensor().detach(), fc, fs)?;
        assert!(diff(&inferred, &cat)? < 1e-12, "inference features differ");
        let mut tracked: Vec<&Tensor> = vec![xi.as_tensor()];
        for (wt, b) in &vars {
            tracked.push(wt.as_tensor());
            tracked.extend(b.as_ref().map(|b| b.as_tensor()));
        }
        assert_same_grads(&gf, &gp, &tracked, "S features")?;
        Ok(())
    }

    #[test]
    fn fused_contextual_part_matches_the_op_chain() -> Result<()> {
        check_shrink(4, 3, true, 3)?;
        check_shrink(3, 1, false, 3)?;
        check_shrink(2, 2, true, 3)
    }

    #[test]
    fn fused_shrink_block_matches_the_op_chain() -> Result<()> {
        check_shrink(4, 4, true, 1)?;
        check_shrink(3, 2, false, 1)?;
        check_shrink(2, 1, true, 1)
    }

    #[test]
    fn wrong_weight_shape_is_rejected() -> Result<()> {
        let xi = ramp(&[1, 4, 3, 3], 0.0)?;
        let wt = ramp(&[4, 4, 3, 3], 0.0)?;
        let layers = [DenseLayer {
            weight: wt.as_tensor(),
            bias: None,
            groups: 2,
        }];
        let e = dense_group_features(&xi, &layers).unwrap_err().to_string();
        assert!(
            e.contains("dense layer 0") && e.contains("[4, 2, 3, 3]"),
            "{e}"
        );
        Ok(())
    }
}
