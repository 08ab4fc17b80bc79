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
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// First and second moments of one variable: plain host vectors on the CPU
/// (one fused loop per step instead of ten tensor operations), tensors elsewhere.
enum Moments {
    Host { m: Vec<f32>, v: Vec<f32> },
    Device { m: Var, v: Var },
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

    /// One update from the gradients of `loss`.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step += 1;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2 = 1.0 - beta2.powi(t);
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            match &mut p.moments {
                Moments::Host { m, v } => {
                    // PyTorch's formulation: w -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps).
                    let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
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
                Moments::Device { m, v } => {
                    let m_next = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
                    let v_next = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                    let denom = ((v_next.sqrt()? / bias2.sqrt())? + eps)?;
                    let update = ((&m_next / denom)? * (lr / bias1))?;
                    p.var.set(&p.var.as_tensor().sub(&update)?)?;
                    m.set(&m_next)?;
                    v.set(&v_next)?;
                }
            }
        }
        Ok(())
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
