//! Adam with a state that can be saved and restored, so an interrupted
//! training resumes exactly (candle's own optimisers keep their moments private).

use std::collections::HashMap;

use candle_core::{DType, Result, Tensor, Var};

/// Adam hyper-parameters (PyTorch's defaults; no weight decay, as the reference trains).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Step size.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator guard.
    pub eps: f64,
    /// Gradients whose global L2 norm exceeds this are scaled down to it
    /// first (PyTorch's `clip_grad_norm_`); `None`: never.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: None,
        }
    }
}

/// First and second moments of one variable: plain host vectors on the CPU
/// (one fused loop per step instead of ten tensor operations), tensors elsewhere.
enum Moments {
    Host { m: Vec<f32>, v: Vec<f32> },
    Device { m: Var, v: Var },
}

/// One variable's gradient, where its moments live.
enum Grad {
    Host(Vec<f32>),
    Device(Tensor),
}

struct Param {
    name: String,
    var: Var,
    moments: Moments,
}

/// Adam over a named set of variables.
pub struct Adam {
    config: AdamConfig,
    /// Variables in a fixed (sorted-name) order, with their moments.
    params: Vec<Param>,
    step: u64,
}

impl Adam {
    /// Optimises the given named variables (e.g. `VarMap::data()`); names fix
    /// the order so the state can be saved by name.
    pub fn new(vars: &HashMap<String, Var>, config: AdamConfig) -> Result<Adam> {
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let mut params = Vec::with_capacity(names.len());
        for name in names {
            let var = vars[name].clone();
            let moments = if var.device().is_cpu() {
                let n = var.elem_count();
                Moments::Host {
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            } else {
                Moments::Device {
                    m: Var::zeros(var.shape(), DType::F32, var.device())?,
                    v: Var::zeros(var.shape(), DType::F32, var.device())?,
                }
            };
            params.push(Param {
                name: name.clone(),
                var,
                moments,
            });
        }
        Ok(Adam {
            config,
            params,
            step: 0,
        })
    }

    /// Current learning rate.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate (the scheduler's job).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update from the gradients of `loss`; returns the gradients'
    /// global L2 norm before any clipping.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<f64> {
        let grads = loss.backward()?;
        self.step += 1;
        #[cfg(feature = "cuda")]
        if let Some(norm) = self.fused_cuda_step(&grads)? {
            return Ok(norm);
        }
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            max_grad_norm,
        } = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2 = 1.0 - beta2.powi(t);
        // The norm needs every gradient before any update: gather first.
        let mut gathered = Vec::with_capacity(self.params.len());
        let mut sum_sq = 0.0f64;
        // Summed on the device and read once: one transfer per step, not one per variable.
        let mut device_sum_sq: Option<Tensor> = None;
        for p in &self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                gathered.push(None);
                continue;
            };
            let g = match p.moments {
                Moments::Host { .. } => {
                    let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
                    sum_sq += g.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
                    Grad::Host(g)
                }
                Moments::Device { .. } => {
                    let part = g.sqr()?.sum_all()?.to_dtype(DType::F64)?;
                    device_sum_sq = Some(match device_sum_sq {
                        Some(sum) => (sum + part)?,
                        None => part,
                    });
                    Grad::Device(g.clone())
                }
            };
            gathered.push(Some(g));
        }
        if let Some(sum) = device_sum_sq {
            sum_sq += sum.to_scalar::<f64>()?;
        }
        let norm = sum_sq.sqrt();
        let scale = match max_grad_norm {
            // PyTorch's factor: max / (norm + 1e-6), applied only when below 1.
            Some(max) if norm > max => max / (norm + 1e-6),
            _ => 1.0,
        };
        for (p, g) in self.params.iter_mut().zip(gathered) {
            let Some(g) = g else { continue };
            match (&mut p.moments, g) {
                (Moments::Host { m, v }, Grad::Host(mut g)) => {
                    if scale != 1.0 {
                        let s = scale as f32;
                        g.iter_mut().for_each(|x| *x *= s);
                    }
                    // PyTorch's formulation: w -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
                    let mut w: Vec<f32> = p.var.as_tensor().flatten_all()?.to_vec1()?;
                    let (b1, b2) = (beta1 as f32, beta2 as f32);
                    let step_size = (lr / bias1) as f32;
                    let bc2_sqrt = bias2.sqrt() as f32;
                    let eps = eps as f32;
                    for i in 0..w.len() {
                        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                        w[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + eps);
                    }
                    p.var
                        .set(&Tensor::from_vec(w, p.var.shape(), p.var.device())?)?;
                }
                (Moments::Device { m, v }, Grad::Device(g)) => {
                    let g = if scale != 1.0 { (g * scale)? } else { g };
                    let m_next = ((m.as_tensor() * beta1)? + (&g * (1.0 - beta1))?)?;
                    let v_next = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                    let denom = ((v_next.sqrt()? / bias2.sqrt())? + eps)?;
                    let update = ((&m_next / denom)? * (lr / bias1))?;
                    p.var.set(&p.var.as_tensor().sub(&update)?)?;
                    m.set(&m_next)?;
                    v.set(&v_next)?;
                }
                _ => unreachable!("a gradient is gathered in its variable's moment kind"),
            }
        }
        Ok(norm)
    }

    /// The whole update as three CUDA launches (see
    /// [`crate::ops::cuda::kernels::adam`]) when every variable is an f32
    /// tensor on one CUDA device; `None` otherwise (the generic path runs).
    /// `ESR_EA_UNFUSED_ADAM=1` turns it off, to measure what it saves.
    #[cfg(feature = "cuda")]
    fn fused_cuda_step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<Option<f64>> {
        use crate::ops::cuda::kernels::{adam, AdamStep, AdamTensor};
        use crate::ops::cuda::tensor_ptr;
        static UNFUSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *UNFUSED.get_or_init(|| std::env::var("ESR_EA_UNFUSED_ADAM").is_ok_and(|v| v == "1")) {
            return Ok(None);
        }
        let Some(device) = self.params.first().map(|p| p.var.device().clone()) else {
            return Ok(None);
        };
        let candle_core::Device::Cuda(dev) = &device else {
            return Ok(None);
        };
        let same = |t: &Tensor| t.dtype() == DType::F32 && t.device().same_device(&device);
        let mut held = Vec::with_capacity(self.params.len());
        let mut tensors = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let Moments::Device { m, v } = &p.moments else {
                return Ok(None);
            };
            if !same(p.var.as_tensor()) || !p.var.is_contiguous() {
                return Ok(None);
            }
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let g = g.contiguous()?;
            if !same(&g) {
                return Ok(None);
            }
            tensors.push(AdamTensor {
                w: tensor_ptr(p.var.as_tensor(), "weights")?,
                g: tensor_ptr(&g, "gradient")?,
                m: tensor_ptr(m.as_tensor(), "first moment")?,
                v: tensor_ptr(v.as_tensor(), "second moment")?,
                len: p.var.elem_count(),
            });
            // The gradient must outlive the launches that read it.
            held.push(g);
        }
        let c = self.config;
        let t = self.step as i32;
        let step = AdamStep {
            step_size: (c.lr / (1.0 - c.beta1.powi(t))) as f32,
            beta1: c.beta1 as f32,
            beta2: c.beta2 as f32,
            bc2_sqrt: (1.0 - c.beta2.powi(t)).sqrt() as f32,
            eps: c.eps as f32,
            max_grad_norm: c.max_grad_norm,
        };
        let norm = adam(dev, &tensors, step)?;
        drop(held);
        Ok(Some(norm))
    }

    /// The moments and step count as named tensors (`adam.m.<name>`,
    /// `adam.v.<name>`, `adam.step`), ready to be saved beside the weights.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for p in &self.params {
            let (m, v) = match &p.moments {
                Moments::Host { m, v } => (
                    Tensor::from_slice(m, p.var.shape(), p.var.device())?,
                    Tensor::from_slice(v, p.var.shape(), p.var.device())?,
                ),
                Moments::Device { m, v } => (m.as_tensor().copy()?, v.as_tensor().copy()?),
            };
            out.insert(format!("adam.m.{}", p.name), m);
            out.insert(format!("adam.v.{}", p.name), v);
        }
        let device = self
            .params
            .first()
            .map(|p| p.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        // f64 keeps every u64 step count below 2^53 exact.
        out.insert(
            "adam.step".into(),
            Tensor::new(&[self.step as f64], &device)?,
        );
        Ok(out)
    }

    /// Restores moments and step count saved by [`Adam::state_tensors`].
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for p in &mut self.params {
            let get = |prefix: &str| {
                let key = format!("adam.{prefix}.{}", p.name);
                let t = state.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimiser state has no tensor '{key}'"))
                })?;
                if t.dims() != p.var.dims() {
                    return Err(candle_core::Error::Msg(format!(
                        "optimiser state '{key}' has shape {:?}, the variable {:?}",
                        t.dims(),
                        p.var.dims()
                    )));
                }
                Ok(t.clone())
            };
            let (tm, tv) = (get("m")?, get("v")?);
            match &mut p.moments {
                Moments::Host { m, v } => {
                    *m = tm.flatten_all()?.to_vec1()?;
                    *v = tv.flatten_all()?.to_vec1()?;
                }
                Moments::Device { m, v } => {
                    m.set(&tm.to_device(m.device())?)?;
                    v.set(&tv.to_device(v.device())?)?;
                }
            }
        }
        let step = state
            .get("adam.step")
            .ok_or_else(|| candle_core::Error::Msg("optimiser state has no 'adam.step'".into()))?;
        self.step = step.to_vec1::<f64>()?[0] as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn vars(x0: f32) -> HashMap<String, Var> {
        let mut map = HashMap::new();
        map.insert(
            "w".to_string(),
            Var::from_tensor(&Tensor::new(&[x0, -x0], &Device::Cpu).unwrap()).unwrap(),
        );
        map
    }

    fn loss(vars: &HashMap<String, Var>) -> Tensor {
        // (w - 3)^2 summed: minimum at w = 3.
        (vars["w"].as_tensor() - 3.0)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    }

    /// The vendored candle-core (vendor/candle-core/PATCHED.md) keeps the
    /// first gradient reaching a tensor instead of adding it into zeros:
    /// a `-0.0` gradient keeps its sign, which `0 + -0.0` would lose. A
    /// tensor reached twice still gets the sum of both.
    #[test]
    fn the_first_gradient_reaching_a_tensor_is_kept_as_it_is() -> Result<()> {
        let x = Var::new(&[1f32, 2.0, 3.0], &Device::Cpu)?;
        let c = Tensor::new(&[-0.0f32, 5.0, -0.0], &Device::Cpu)?;
        let once = (x.as_tensor() * &c)?.sum_all()?;
        let g = once
            .backward()?
            .get(x.as_tensor())
            .unwrap()
            .to_vec1::<f32>()?;
        assert_eq!(g, [0.0, 5.0, 0.0]);
        assert!(
            g[0].is_sign_negative() && g[2].is_sign_negative(),
            "the gradient {g:?} went through an add into zeros: is the patched candle-core in use?"
        );
        let d = Tensor::new(&[2f32, -1.0, 0.5], &Device::Cpu)?;
        let twice = ((x.as_tensor() * &c)? + (x.as_tensor() * &d)?)?.sum_all()?;
        let g = twice
            .backward()?
            .get(x.as_tensor())
            .unwrap()
            .to_vec1::<f32>()?;
        assert_eq!(g, [2.0, 4.0, 0.5]);
        Ok(())
    }

    #[test]
    fn first_step_moves_each_value_by_lr_like_pytorch() {
        let v = vars(1.0);
        let mut adam = Adam::new(
            &v,
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        adam.backward_step(&loss(&v)).unwrap();
        let w = v["w"].as_tensor().to_vec1::<f32>().unwrap();
        // Adam's first step is lr * sign(grad).
        assert!((w[0] - 1.1).abs() < 1e-5, "{w:?}");
        assert!((w[1] - (-0.9)).abs() < 1e-5, "{w:?}");
    }

    #[test]
    fn converges_on_a_quadratic() {
        let v = vars(0.0);
        let mut adam = Adam::new(
            &v,
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..300 {
            adam.backward_step(&loss(&v)).unwrap();
        }
        let w = v["w"].as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (w[0] - 3.0).abs() < 0.05 && (w[1] - 3.0).abs() < 0.05,
            "{w:?}"
        );
    }

    #[test]
    fn reports_the_gradient_norm_and_clips_to_the_limit() {
        // Gradients of the quadratic at w = (1, -1): 2 (w - 3) = (-4, -8).
        let norm_of = (16.0f64 + 64.0).sqrt();
        let run = |max_grad_norm| {
            let v = vars(1.0);
            let mut adam = Adam::new(
                &v,
                AdamConfig {
                    lr: 0.1,
                    max_grad_norm,
                    ..Default::default()
                },
            )
            .unwrap();
            let norm = adam.backward_step(&loss(&v)).unwrap();
            let state = adam.state_tensors().unwrap();
            let second: Vec<f32> = state["adam.v.w"].to_vec1().unwrap();
            (norm, second)
        };
        let (free, v_free) = run(None);
        assert!((free - norm_of).abs() < 1e-9, "{free}");
        // (1 - beta2) in f32 is 0.001 to 5e-5 relative.
        assert!(
            (f64::from(v_free[0]) / 0.016 - 1.0).abs() < 1e-4,
            "{v_free:?}"
        );
        // A limit above the norm changes nothing.
        assert_eq!(run(Some(100.0)).1, v_free);
        // Below it, the moments see the gradient scaled to the limit.
        let (clipped, v_clipped) = run(Some(1.0));
        assert!((clipped - norm_of).abs() < 1e-9, "the norm before clipping");
        let scale = 1.0 / (norm_of + 1e-6);
        for (got, g) in v_clipped.iter().zip([-4.0f64, -8.0]) {
            let want = 0.001 * (g * scale).powi(2);
            assert!(
                (f64::from(*got) / want - 1.0).abs() < 1e-4,
                "{got} vs {want}"
            );
        }
    }

    #[test]
    fn saved_state_resumes_identically() {
        let run = |split: Option<usize>| {
            let v = vars(0.5);
            let cfg = AdamConfig {
                lr: 0.05,
                ..Default::default()
            };
            let mut adam = Adam::new(&v, cfg).unwrap();
            let mut trace = Vec::new();
            for step in 0..10 {
                if split == Some(step) {
                    let state = adam.state_tensors().unwrap();
                    let weights = v["w"].as_tensor().copy().unwrap();
                    let fresh = vars(0.0);
                    fresh["w"].set(&weights).unwrap();
                    let mut resumed = Adam::new(&fresh, cfg).unwrap();
                    resumed.load_state(&state).unwrap();
                    for _ in step..10 {
                        resumed.backward_step(&loss(&fresh)).unwrap();
                        trace.push(fresh["w"].as_tensor().to_vec1::<f32>().unwrap());
                    }
                    return trace;
                }
                adam.backward_step(&loss(&v)).unwrap();
                trace.push(v["w"].as_tensor().to_vec1::<f32>().unwrap());
            }
            trace
        };
        assert_eq!(run(None), run(Some(4)));
    }
}
