//! Per-frame inference latency of a network, in candle or in onnxruntime
//! (through a Python that has it), for deployment figures.
//!
//! Parameters and Multi-Adds predict device speed badly (memory traffic of
//! concats, pooling and shuffles is not counted), so the export reports a
//! measured time per frame too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;

pub use crate::config::latency::{parse_size, LatencyLimit, Runtime};
use crate::model::Esrn;

/// What one measurement found: milliseconds per frame over `frames` timed
/// runs, after one untimed warm-up run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Where it ran.
    pub runtime: Runtime,
    /// CPU threads it was given.
    pub threads: usize,
    /// Input width (LR pixels).
    pub width: usize,
    /// Input height (LR pixels).
    pub height: usize,
    /// Timed frames.
    pub frames: usize,
    /// Median ms per frame.
    pub median_ms: f64,
    /// Fastest frame, ms.
    pub min_ms: f64,
    /// Slowest frame, ms.
    pub max_ms: f64,
}

impl Latency {
    fn from_times(
        runtime: Runtime,
        threads: usize,
        (width, height): (usize, usize),
        mut times: Vec<f64>,
    ) -> Result<Latency> {
        if times.is_empty() {
            bail!("no frame was timed");
        }
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let median = if n % 2 == 1 {
            times[n / 2]
        } else {
            (times[n / 2 - 1] + times[n / 2]) / 2.0
        };
        Ok(Latency {
            runtime,
            threads,
            width,
            height,
            frames: n,
            median_ms: median,
            min_ms: times[0],
            max_ms: times[n - 1],
        })
    }
}

/// A deterministic frame in 0..1 (content does not change the work).
fn frame((width, height): (usize, usize)) -> candle_core::Result<Tensor> {
    let v: Vec<f32> = (0..3 * width * height)
        .map(|i| 0.5 + 0.4 * ((i % 997) as f32 * 0.11).sin())
        .collect();
    Tensor::from_vec(v, (1, 3, height, width), &Device::Cpu)
}

/// Times `frames` forward passes of `model` on the CPU on a `size` frame.
/// The thread count is what `ops::configure_threads` set for this process;
/// `progress` is told each frame's time.
pub fn measure_candle(
    model: &Esrn,
    size: (usize, usize),
    threads: usize,
    frames: usize,
    mut progress: impl FnMut(usize, f64),
) -> Result<Latency> {
    let x = frame(size)?;
    model.forward(&x).context("warm-up frame failed")?;
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        let start = Instant::now();
        // The CPU backend computes eagerly: the frame is done on return.
        let y = model.forward(&x)?;
        debug_assert_eq!(y.dims()[0], 1);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        progress(i + 1, ms);
        times.push(ms);
    }
    Latency::from_times(Runtime::Candle, threads, size, times)
}

/// The Python that has onnxruntime: `ESR_EA_PYTHON`, else the venv that
/// `scripts/onnx-check.sh` creates (`scripts/.onnx-venv`, looked up in the
/// current folder and in the source tree this binary was built from).
pub fn onnxruntime_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ESR_EA_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = Path::new("scripts/.onnx-venv/bin/python");
    for base in [Path::new("."), Path::new(env!("CARGO_MANIFEST_DIR"))] {
        let candidate = base.join(venv);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "onnxruntime: no Python with onnxruntime found (run scripts/onnx-check.sh once, which creates scripts/.onnx-venv, or set ESR_EA_PYTHON)"
    )
}

/// The Python side of [`measure_onnxruntime`]: one session, sequential, the
/// given intra-op threads; prints the per-frame times (ms) as JSON.
const ORT_TIMER: &str = r#"
import json, sys, time
import numpy as np
import onnxruntime as ort
path, width, height, threads, frames = sys.argv[1], *map(int, sys.argv[2:6])
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
sess.run(None, {"lr": x})
times = []
for i in range(frames):
    t = time.perf_counter()
    sess.run(None, {"lr": x})
    times.append((time.perf_counter() - t) * 1e3)
    print(f"frame {i + 1}/{frames}: {times[-1]:.1f} ms", file=sys.stderr, flush=True)
print(json.dumps(times))
"#;

/// Times `frames` runs of the ONNX file `onnx` in onnxruntime (CPU, `threads`
/// intra-op threads) on a `size` frame, through `python`.
pub fn measure_onnxruntime(
    python: &Path,
    onnx: &Path,
    size: (usize, usize),
    threads: usize,
    frames: usize,
) -> Result<Latency> {
    let stderr = std::process::Stdio::inherit();
    time_onnxruntime(python, onnx, size, threads, frames, stderr)
}

fn time_onnxruntime(
    python: &Path,
    onnx: &Path,
    size: (usize, usize),
    threads: usize,
    frames: usize,
    stderr: std::process::Stdio,
) -> Result<Latency> {
    let out = Command::new(python)
        .arg("-c")
        .arg(ORT_TIMER)
        .arg(onnx)
        .args([size.0, size.1, threads, frames].map(|v| v.to_string()))
        .stderr(stderr)
        .output()
        .with_context(|| format!("onnxruntime: cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "onnxruntime: {} failed ({}); is onnxruntime installed there? (scripts/onnx-check.sh sets up scripts/.onnx-venv)",
            python.display(),
            out.status
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let times: Vec<f64> = serde_json::from_str(text.trim().lines().last().unwrap_or(""))
        .with_context(|| format!("onnxruntime: unexpected output from the timer: {text}"))?;
    Latency::from_times(Runtime::Onnxruntime, threads, size, times)
}

/// Measuring, the part of the limit that needs a network.
impl LatencyLimit {
    /// Measures the median ms per frame of `arch` with weights drawn from
    /// `seed` (the weights' values do not change the work). Candle runs in
    /// this process, so it uses the kernel threads the process was started
    /// with; onnxruntime is given `threads` intra-op threads.
    pub fn measure(&self, arch: &crate::space::Arch, seed: u64) -> Result<f64> {
        let size = (self.width, self.height);
        let (model, _) = Esrn::seeded(arch, seed, &Device::Cpu)?;
        let latency = match self.runtime {
            Runtime::Candle => measure_candle(&model, size, self.threads, self.frames, |_, _| {})?,
            Runtime::Onnxruntime => {
                let python = onnxruntime_python()?;
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let file = std::env::temp_dir()
                    .join(format!("esr-ea-limit-{}-{n}.onnx", std::process::id()));
                crate::onnx::write_onnx(&model, &file)?;
                // The per-frame lines would scribble over the dashboard.
                let result = time_onnxruntime(
                    &python,
                    &file,
                    size,
                    self.threads,
                    self.frames,
                    std::process::Stdio::null(),
                );
                let _ = std::fs::remove_file(&file);
                result?
            }
        };
        Ok(latency.median_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_are_named() {
        assert_eq!(parse_size("640x360").unwrap(), (640, 360));
        assert_eq!(parse_size("8X4").unwrap(), (8, 4));
        for bad in ["640", "0x360", "ax3", "640x-1"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("640x360"), "{e}");
        }
    }

    #[test]
    fn median_min_max_of_the_frames() {
        let l = Latency::from_times(Runtime::Candle, 1, (4, 2), vec![5.0, 1.0, 3.0, 9.0]).unwrap();
        assert_eq!(
            (l.median_ms, l.min_ms, l.max_ms, l.frames),
            (4.0, 1.0, 9.0, 4)
        );
        assert!(Latency::from_times(Runtime::Candle, 1, (4, 2), vec![]).is_err());
    }

    #[test]
    fn candle_latency_times_real_frames() {
        let arch = crate::space::Arch {
            genes: crate::space::GeneList::parse_args(&["S_1_8_8 C_1_8_8"]).unwrap(),
            g0: 8,
            scale: 2,
            bias: true,
        };
        let (model, _) = Esrn::seeded(&arch, 1, &Device::Cpu).unwrap();
        let mut seen = 0;
        let l = measure_candle(&model, (9, 5), 1, 3, |_, _| seen += 1).unwrap();
        assert_eq!((seen, l.frames, l.width, l.height), (3, 3, 9, 5));
        assert!(l.min_ms > 0.0 && l.min_ms <= l.median_ms && l.median_ms <= l.max_ms);
    }
}
