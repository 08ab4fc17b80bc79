//! The stride-1 "same" convolution of [`crate::ops::conv2d`] on cuDNN:
//! forward, input gradient, weight gradient and bias gradient.
//!
//! Per thread and device one cuDNN handle on candle's stream (cuDNN handles
//! are not `Send`); per shape one set of descriptors; per shape, pass and
//! precision one algorithm, chosen by timing every algorithm cuDNN offers
//! (`cudnnFind…`, what PyTorch does with `cudnn.benchmark`) the first time
//! the shape is seen and cached for the process, so a later worker with the
//! same shapes (the same channel widths recur across a search's members)
//! does not time them again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::cudnn::{result as dnn, sys};
use candle_core::cuda::cudarc::driver::{CudaSlice, DevicePtr};
use candle_core::cuda::DeviceId;
use candle_core::{bail, CudaDevice, CudaStorage, Layout, Result, Shape};

use super::{f32_ptr, kernels, new_output};
use crate::ops::geom::ConvGeom;

/// Workspace an algorithm may use, bytes: several workers share one card,
/// and the fastest algorithms for these small convolutions need far less.
const MAX_WORKSPACE: usize = 512 << 20;

/// Thread-local descriptor sets kept before the cache is dropped and rebuilt
/// (tiled inference meets a few new shapes per image size).
const MAX_PLANS: usize = 4096;

fn err(e: sys::cudnnStatus_t, what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("cuDNN {what}: {e:?}"))
}

fn check(status: sys::cudnnStatus_t, what: &str) -> Result<()> {
    if status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(err(status, what))
    }
}

fn wrap(e: dnn::CudnnError, what: &str) -> candle_core::Error {
    err(e.0, what)
}

/// A shape of the convolution, the key of every cache here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ShapeKey {
    batch: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    groups: usize,
    tf32: bool,
}

impl ShapeKey {
    fn new(g: &ConvGeom, tf32: bool) -> ShapeKey {
        ShapeKey {
            batch: g.batch,
            c_in: g.c_in,
            c_out: g.c_out,
            h: g.h,
            w: g.w,
            k: g.k,
            groups: g.groups,
            tf32,
        }
    }
}

/// The three passes, each with its own algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pass {
    Forward,
    Data,
    Filter,
}

/// One pass's algorithm, as cuDNN names it.
#[derive(Debug, Clone, Copy)]
enum Algo {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    Data(sys::cudnnConvolutionBwdDataAlgo_t),
    Filter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

/// A timed choice: the algorithm, its workspace and the math type it was
/// timed with.
#[derive(Debug, Clone, Copy)]
struct Choice {
    algo: Algo,
    workspace: usize,
    math: sys::cudnnMathType_t,
}

/// Algorithms chosen so far, for every thread and device of the process.
fn choices() -> &'static Mutex<HashMap<(ShapeKey, Pass), Choice>> {
    static CHOICES: OnceLock<Mutex<HashMap<(ShapeKey, Pass), Choice>>> = OnceLock::new();
    CHOICES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A cuDNN handle bound to one candle device's stream.
struct Handle(sys::cudnnHandle_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreate, destroyed once.
        unsafe {
            let _ = dnn::destroy_handle(self.0);
        }
    }
}

/// Descriptors of one shape: input, output, filter, bias, convolution.
struct Plan {
    handle: Rc<Handle>,
    x: sys::cudnnTensorDescriptor_t,
    y: sys::cudnnTensorDescriptor_t,
    bias: sys::cudnnTensorDescriptor_t,
    w: sys::cudnnFilterDescriptor_t,
    conv: sys::cudnnConvolutionDescriptor_t,
    key: ShapeKey,
}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each descriptor was created once in Plan::new and is destroyed once.
        unsafe {
            let _ = dnn::destroy_tensor_descriptor(self.x);
            let _ = dnn::destroy_tensor_descriptor(self.y);
            let _ = dnn::destroy_tensor_descriptor(self.bias);
            let _ = dnn::destroy_filter_descriptor(self.w);
            let _ = dnn::destroy_convolution_descriptor(self.conv);
        }
    }
}

type PlanCache = HashMap<(DeviceId, ShapeKey), Rc<Plan>>;

thread_local! {
    static HANDLES: RefCell<HashMap<DeviceId, Rc<Handle>>> = RefCell::new(HashMap::new());
    static PLANS: RefCell<PlanCache> = RefCell::new(HashMap::new());
}

fn handle(dev: &CudaDevice) -> Result<Rc<Handle>> {
    HANDLES.with(|h| {
        if let Some(handle) = h.borrow().get(&dev.id()) {
            return Ok(handle.clone());
        }
        let stream = dev.cuda_stream();
        stream
            .context()
            .bind_to_thread()
            .map_err(candle_core::Error::wrap)?;
        let raw = dnn::create_handle().map_err(|e| {
            candle_core::Error::Msg(format!(
                "cuDNN cannot start ({:?}): is libcudnn.so.9 (cuDNN 9, e.g. PyPI's nvidia-cudnn-cu13) on LD_LIBRARY_PATH?",
                e.0
            ))
        })?;
        let handle = Rc::new(Handle(raw));
        // SAFETY: a fresh handle and candle's live stream for this device.
        unsafe { dnn::set_stream(raw, stream.cu_stream() as *mut _) }
            .map_err(|e| wrap(e, "set stream"))?;
        h.borrow_mut().insert(dev.id(), handle.clone());
        Ok(handle)
    })
}

fn plan(dev: &CudaDevice, g: &ConvGeom) -> Result<Rc<Plan>> {
    let key = ShapeKey::new(g, super::tf32());
    if let Some(p) = PLANS.with(|p| p.borrow().get(&(dev.id(), key)).cloned()) {
        return Ok(p);
    }
    let handle = handle(dev)?;
    let f32t = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
    let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
    let i = |v: usize| v as i32;
    let e = |e| wrap(e, "descriptor");
    let plan = Plan {
        handle,
        x: dnn::create_tensor_descriptor().map_err(e)?,
        y: dnn::create_tensor_descriptor().map_err(e)?,
        bias: dnn::create_tensor_descriptor().map_err(e)?,
        w: dnn::create_filter_descriptor().map_err(e)?,
        conv: dnn::create_convolution_descriptor().map_err(e)?,
        key,
    };
    let pad = i((g.k - 1) / 2);
    // SAFETY: descriptors created just above.
    unsafe {
        dnn::set_tensor4d_descriptor(plan.x, nchw, f32t, [i(g.batch), i(g.c_in), i(g.h), i(g.w)])
            .map_err(e)?;
        dnn::set_tensor4d_descriptor(plan.y, nchw, f32t, [i(g.batch), i(g.c_out), i(g.h), i(g.w)])
            .map_err(e)?;
        dnn::set_tensor4d_descriptor(plan.bias, nchw, f32t, [1, i(g.c_out), 1, 1]).map_err(e)?;
        dnn::set_filter4d_descriptor(
            plan.w,
            f32t,
            nchw,
            [i(g.c_out), i(g.c_in / g.groups), i(g.k), i(g.k)],
        )
        .map_err(e)?;
        dnn::set_convolution2d_descriptor(
            plan.conv,
            pad,
            pad,
            1,
            1,
            1,
            1,
            sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
            f32t,
        )
        .map_err(e)?;
        dnn::set_convolution_group_count(plan.conv, i(g.groups)).map_err(e)?;
    }
    let plan = Rc::new(plan);
    PLANS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() >= MAX_PLANS {
            p.clear();
        }
        p.insert((dev.id(), key), plan.clone());
    });
    Ok(plan)
}

/// The math type a precision setting allows cuDNN: plain FMA for f32
/// (results as the CPU's, to rounding), tensor cores with TF32 when allowed.
fn allowed_math(tf32: bool) -> sys::cudnnMathType_t {
    if tf32 {
        sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
    } else {
        sys::cudnnMathType_t::CUDNN_FMA_MATH
    }
}

/// Picks the fastest successful result whose workspace fits.
macro_rules! pick {
    ($results:expr, $count:expr, $kind:path) => {
        $results[..$count as usize]
            .iter()
            .filter(|r| {
                r.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS && r.memory <= MAX_WORKSPACE
            })
            .min_by(|a, b| a.time.total_cmp(&b.time))
            .map(|r| Choice {
                algo: $kind(r.algo),
                workspace: r.memory,
                math: r.mathType,
            })
    };
}

impl Plan {
    /// The algorithm for `pass`, timed now if this shape is new.
    fn choice(&self, pass: Pass) -> Result<Choice> {
        if let Some(c) = choices()
            .lock()
            .ok()
            .and_then(|c| c.get(&(self.key, pass)).copied())
        {
            return Ok(c);
        }
        // SAFETY: the descriptors are live; cudnnFind allocates and frees its own buffers.
        unsafe {
            dnn::set_convolution_math_type(self.conv, allowed_math(self.key.tf32))
                .map_err(|e| wrap(e, "math type"))?;
        }
        let h = self.handle.0;
        let mut count = 0i32;
        let chosen = match pass {
            Pass::Forward => {
                let mut r =
                    [unsafe { std::mem::zeroed::<sys::cudnnConvolutionFwdAlgoPerf_t>() }; 8];
                // SAFETY: as above; r has room for 8 results.
                check(
                    unsafe {
                        sys::cudnnFindConvolutionForwardAlgorithm(
                            h,
                            self.x,
                            self.w,
                            self.conv,
                            self.y,
                            8,
                            &mut count,
                            r.as_mut_ptr(),
                        )
                    },
                    "timing forward algorithms",
                )?;
                pick!(r, count, Algo::Forward)
            }
            Pass::Data => {
                let mut r =
                    [unsafe { std::mem::zeroed::<sys::cudnnConvolutionBwdDataAlgoPerf_t>() }; 6];
                // SAFETY: as above; r has room for 6 results.
                check(
                    unsafe {
                        sys::cudnnFindConvolutionBackwardDataAlgorithm(
                            h,
                            self.w,
                            self.y,
                            self.conv,
                            self.x,
                            6,
                            &mut count,
                            r.as_mut_ptr(),
                        )
                    },
                    "timing input-gradient algorithms",
                )?;
                pick!(r, count, Algo::Data)
            }
            Pass::Filter => {
                let mut r =
                    [unsafe { std::mem::zeroed::<sys::cudnnConvolutionBwdFilterAlgoPerf_t>() }; 7];
                // SAFETY: as above; r has room for 7 results.
                check(
                    unsafe {
                        sys::cudnnFindConvolutionBackwardFilterAlgorithm(
                            h,
                            self.x,
                            self.y,
                            self.conv,
                            self.w,
                            7,
                            &mut count,
                            r.as_mut_ptr(),
                        )
                    },
                    "timing weight-gradient algorithms",
                )?;
                pick!(r, count, Algo::Filter)
            }
        };
        let Some(choice) = chosen else {
            bail!(
                "cuDNN has no {pass:?} algorithm for a {}x{}x{}x{} input, {} outputs, {}x{} kernel, {} groups within {} MiB of workspace",
                self.key.batch, self.key.c_in, self.key.h, self.key.w, self.key.c_out, self.key.k,
                self.key.k, self.key.groups, MAX_WORKSPACE >> 20
            );
        };
        if let Ok(mut c) = choices().lock() {
            c.insert((self.key, pass), choice);
        }
        Ok(choice)
    }

    /// Sets the chosen math type and allocates its workspace.
    fn prepare(&self, dev: &CudaDevice, choice: &Choice) -> Result<Option<CudaSlice<u8>>> {
        // SAFETY: live descriptor.
        unsafe {
            dnn::set_convolution_math_type(self.conv, choice.math)
                .map_err(|e| wrap(e, "math type"))?;
        }
        if choice.workspace == 0 {
            return Ok(None);
        }
        // SAFETY: scratch memory that cuDNN writes before it reads.
        Ok(Some(unsafe { dev.alloc::<u8>(choice.workspace)? }))
    }
}

/// The descriptors of `g`, the algorithm for `pass` (timed now if the shape
/// is new) and its workspace, ready to call.
fn start(
    dev: &CudaDevice,
    g: &ConvGeom,
    pass: Pass,
) -> Result<(Rc<Plan>, Algo, Option<CudaSlice<u8>>)> {
    let p = plan(dev, g)?;
    let c = p.choice(pass)?;
    let ws = p.prepare(dev, &c)?;
    Ok((p, c.algo, ws))
}

/// A cached choice of another pass's kind: cannot happen (the cache is
/// keyed by pass), but named if it does.
fn wrong_pass(pass: Pass) -> candle_core::Error {
    candle_core::Error::Msg(format!(
        "cuDNN: the cached {pass:?} choice holds another pass's algorithm"
    ))
}

fn ws_ptr(dev: &CudaDevice, ws: &Option<CudaSlice<u8>>) -> (*mut c_void, usize) {
    match ws {
        Some(buf) => {
            let stream = dev.cuda_stream();
            let (p, _sync) = buf.device_ptr(&stream);
            (p as *mut c_void, buf.len())
        }
        None => (std::ptr::null_mut(), 0),
    }
}

const ONE: f32 = 1.0;
const ZERO: f32 = 0.0;
fn one() -> *const c_void {
    (&ONE as *const f32).cast()
}
fn zero() -> *const c_void {
    (&ZERO as *const f32).cast()
}

/// `act(conv(x, w) + bias)`, `[batch, c_out, h, w]`.
pub fn forward(
    g: &ConvGeom,
    relu: bool,
    x: (&CudaStorage, &Layout),
    w: (&CudaStorage, &Layout),
    bias: Option<(&CudaStorage, &Layout)>,
) -> Result<(CudaStorage, Shape)> {
    let dev = x.0.device().clone();
    let xp = f32_ptr(x.0, x.1, "input")?;
    let wp = f32_ptr(w.0, w.1, "weight")?;
    let bp = match bias {
        Some((b, l)) => Some(f32_ptr(b, l, "bias")?),
        None => None,
    };
    let (p, algo, ws) = start(&dev, g, Pass::Forward)?;
    let Algo::Forward(algo) = algo else {
        return Err(wrong_pass(Pass::Forward));
    };
    let (ws_p, ws_n) = ws_ptr(&dev, &ws);
    let n = g.batch * g.c_out * g.h * g.w;
    let (y, yp) = new_output(&dev, n)?;
    // SAFETY: descriptors match the buffers' shapes (checked by ConvGeom);
    // algo is a value cuDNN returned for this very descriptor set.
    check(
        unsafe {
            sys::cudnnConvolutionForward(
                p.handle.0,
                one(),
                p.x,
                xp as *const c_void,
                p.w,
                wp as *const c_void,
                p.conv,
                algo,
                ws_p,
                ws_n,
                zero(),
                p.y,
                yp as *mut c_void,
            )
        },
        "forward convolution",
    )?;
    kernels::bias_act(&dev, yp, bp, g.c_out, (g.h * g.w, g.batch * g.c_out), relu)?;
    drop(ws);
    Ok((
        CudaStorage::wrap_cuda_slice(y, dev),
        Shape::from((g.batch, g.c_out, g.h, g.w)),
    ))
}

/// The input gradient from the output gradient `dy` and the weight.
pub fn grad_input(
    g: &ConvGeom,
    dy: (&CudaStorage, &Layout),
    w: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = dy.0.device().clone();
    let dyp = f32_ptr(dy.0, dy.1, "gradient")?;
    let wp = f32_ptr(w.0, w.1, "weight")?;
    let (p, algo, ws) = start(&dev, g, Pass::Data)?;
    let Algo::Data(algo) = algo else {
        return Err(wrong_pass(Pass::Data));
    };
    let (ws_p, ws_n) = ws_ptr(&dev, &ws);
    let (dx, dxp) = new_output(&dev, g.batch * g.c_in * g.h * g.w)?;
    // SAFETY: as in `forward`.
    check(
        unsafe {
            sys::cudnnConvolutionBackwardData(
                p.handle.0,
                one(),
                p.w,
                wp as *const c_void,
                p.y,
                dyp as *const c_void,
                p.conv,
                algo,
                ws_p,
                ws_n,
                zero(),
                p.x,
                dxp as *mut c_void,
            )
        },
        "input gradient",
    )?;
    drop(ws);
    Ok((
        CudaStorage::wrap_cuda_slice(dx, dev),
        Shape::from((g.batch, g.c_in, g.h, g.w)),
    ))
}

/// The weight gradient, then (when `with_bias`) the bias gradient, flat.
pub fn grad_weight(
    g: &ConvGeom,
    with_bias: bool,
    x: (&CudaStorage, &Layout),
    dy: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = x.0.device().clone();
    let xp = f32_ptr(x.0, x.1, "input")?;
    let dyp = f32_ptr(dy.0, dy.1, "gradient")?;
    let (p, algo, ws) = start(&dev, g, Pass::Filter)?;
    let Algo::Filter(algo) = algo else {
        return Err(wrong_pass(Pass::Filter));
    };
    let (ws_p, ws_n) = ws_ptr(&dev, &ws);
    let w_len = g.w_len();
    let n = w_len + if with_bias { g.c_out } else { 0 };
    let (flat, fp) = new_output(&dev, n)?;
    // SAFETY: as in `forward`; the weight part is the first w_len floats.
    check(
        unsafe {
            sys::cudnnConvolutionBackwardFilter(
                p.handle.0,
                one(),
                p.x,
                xp as *const c_void,
                p.y,
                dyp as *const c_void,
                p.conv,
                algo,
                ws_p,
                ws_n,
                zero(),
                p.w,
                fp as *mut c_void,
            )
        },
        "weight gradient",
    )?;
    // The bias part: the last c_out floats of `flat`.
    let bp = fp + (w_len * std::mem::size_of::<f32>()) as u64;
    if with_bias && own_bias_grad() {
        kernels::channel_sums(&dev, dyp, bp, (g.batch, g.c_out, g.h * g.w))?;
    } else if with_bias {
        // SAFETY: `bp` addresses c_out floats of `flat`.
        check(
            unsafe {
                sys::cudnnConvolutionBackwardBias(
                    p.handle.0,
                    one(),
                    p.y,
                    dyp as *const c_void,
                    zero(),
                    p.bias,
                    bp as *mut c_void,
                )
            },
            "bias gradient",
        )?;
    }
    drop(ws);
    Ok((CudaStorage::wrap_cuda_slice(flat, dev), Shape::from(n)))
}

/// Whether bias gradients are summed by [`kernels::channel_sums`] instead of
/// `cudnnConvolutionBackwardBias` (`ESR_EA_CUDA_OWN_BIAS_GRAD=1`; default
/// cuDNN's): an A/B switch until a profile on the GPU says which is faster.
fn own_bias_grad() -> bool {
    static OWN: OnceLock<bool> = OnceLock::new();
    crate::ops::env_flag_once(&OWN, "ESR_EA_CUDA_OWN_BIAS_GRAD")
}

/// `dy · [y > 0]`: the gradient through the fused ReLU.
pub fn relu_grad(
    dy: (&CudaStorage, &Layout),
    y: (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dev = dy.0.device().clone();
    let n = dy.1.shape().elem_count();
    if y.1.shape().elem_count() != n {
        bail!(
            "ReLU gradient: {n} gradients for {} outputs",
            y.1.shape().elem_count()
        );
    }
    let gp = f32_ptr(dy.0, dy.1, "gradient")?;
    let yp = f32_ptr(y.0, y.1, "output")?;
    let (out, op) = new_output(&dev, n)?;
    kernels::relu_grad(&dev, gp, yp, op, n)?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev), dy.1.shape().clone()))
}
