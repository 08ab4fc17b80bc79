//! The latency constraint's settings (`range.max_latency_ms`, `range.latency`)
//! and their spellings: plain data the config reads and writes. Measuring
//! lives in the crate's `latency` module, which needs the network.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The runtime a latency is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// esr-ea's own candle network (the custom CPU kernels).
    Candle,
    /// The exported ONNX file in onnxruntime's CPU execution provider.
    Onnxruntime,
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Runtime::Candle => "candle",
            Runtime::Onnxruntime => "onnxruntime",
        })
    }
}

/// Parses `WIDTHxHEIGHT` (`640x360`).
pub fn parse_size(text: &str) -> Result<(usize, usize)> {
    let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|&v| v > 0);
    match text.split_once(['x', 'X']) {
        Some((w, h)) => match (parse(w), parse(h)) {
            (Some(w), Some(h)) => Ok((w, h)),
            _ => bail!(
                "size '{text}': width and height must be positive whole numbers (example: 640x360)"
            ),
        },
        None => bail!("size '{text}' is not WIDTHxHEIGHT (example: 640x360)"),
    }
}

/// The search's optional latency constraint (`range.max_latency_ms` with
/// `range.latency`): a member whose measured latency is above `max_ms` is
/// not trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyLimit {
    /// Largest allowed median ms per frame.
    pub max_ms: f64,
    /// Where it is measured.
    pub runtime: Runtime,
    /// CPU threads it is measured on.
    pub threads: usize,
    /// Frame width (LR pixels).
    pub width: usize,
    /// Frame height (LR pixels).
    pub height: usize,
    /// Timed frames (after one warm-up frame).
    pub frames: usize,
}

impl LatencyLimit {
    /// The measurement defaults: candle, 1 thread, 640x360, 3 frames.
    pub fn with_max(max_ms: f64) -> LatencyLimit {
        LatencyLimit {
            max_ms,
            runtime: Runtime::Candle,
            threads: 1,
            width: 640,
            height: 360,
            frames: 3,
        }
    }

    /// How it is measured, for messages: `candle, 1 thread, 640x360`.
    pub fn setting(&self) -> String {
        let s = if self.threads == 1 { "" } else { "s" };
        format!(
            "{}, {} thread{s}, {}x{}",
            self.runtime, self.threads, self.width, self.height
        )
    }

    /// Why a member with `latency_ms` is refused, or `None` when it is within
    /// the limit.
    pub fn rejection(&self, latency_ms: f64) -> Option<String> {
        (latency_ms > self.max_ms).then(|| {
            format!(
                "latency {latency_ms:.1} ms > max_latency_ms {} ({})",
                self.max_ms,
                self.setting()
            )
        })
    }
}
