//! `esr-ea speed`: how fast this machine trains and runs an architecture
//! (the measuring is [`crate::measure::speed`]; this prints its report).

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::device::DeviceName;
use crate::measure::speed::{check_inference_memory, measure, SpeedPlan, SpeedReport};
use crate::measure::Stats;
use crate::space::{Arch, GeneList, SEED_GENES};

/// Arguments of `speed`.
#[derive(Debug, Args)]
pub struct SpeedArgs {
    /// Architecture to time: genes, `seed` (the reference's 17-block seed
    /// network) or `quick` (a network like those configs/quick.yaml draws,
    /// G0 16). Default: both named networks, one after the other.
    #[arg(long, value_name = "GENES|seed|quick", num_args = 1..)]
    pub arch: Vec<String>,
    /// Channels of the shallow features and global fusion (a multiple of
    /// 4); default 32, the quick network's 16. Given, it applies to every
    /// network timed.
    #[arg(long)]
    pub g0: Option<usize>,
    /// Convolutions without biases (the reference's 1.x network).
    #[arg(long)]
    pub no_bias: bool,
    /// Training batch size; default 16, the quick network's 8. Given, it
    /// applies to every network timed.
    #[arg(long)]
    pub batch: Option<usize>,
    /// LR patch side in pixels (the HR patch is `scale` times larger);
    /// default 32, the quick network's 24. Given, it applies to every
    /// network timed.
    #[arg(long)]
    pub patch: Option<usize>,
    /// Upscaling factor.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=4))]
    pub scale: u8,
    /// Timed training steps (0: time inference only).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed steps (and inferences) before the timed ones.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// CPU threads of the convolution kernels (RAYON_NUM_THREADS; default: the
    /// physical cores). candle's element-wise ops run on one thread unless
    /// CANDLE_NUM_THREADS says otherwise (see `esr_ea::ops::configure_threads`).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Device: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceName,
    /// Output size WxH of the timed inference (one image, no gradients), or `none`.
    #[arg(long, default_value = "1280x720", value_name = "WxH|none")]
    pub inference: String,
    /// Timed inference runs.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub inference_runs: usize,
    /// Untimed inference runs before the timed ones.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub inference_warmup: usize,
    /// Seed of the weights and the random batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Mark the last timed training step (forward, backward and Adam) for a
    /// CUDA profiler that waits for it: `ncu --profile-from-start off` or
    /// `nsys profile --capture-range cudaProfilerApi` then records that one
    /// step. CUDA devices only; its own timings include the profiler's cost.
    #[arg(long)]
    pub profile_last_step: bool,
}

/// Runs `speed`.
pub fn run(args: &SpeedArgs) -> Result<()> {
    if args.threads == Some(0) {
        bail!("--threads 0: give at least 1 thread");
    }
    if let Some(t) = args.threads.filter(|&t| t > MAX_THREADS) {
        bail!("--threads {t}: at most {MAX_THREADS} threads");
    }
    // Before anything touches candle: its thread pools read these once.
    crate::ops::configure_threads(args.threads);
    let networks = networks(args)?;
    if networks.iter().any(|n| n.batch == 0 || n.patch == 0) {
        bail!(
            "--batch {} --patch {}: both must be at least 1",
            args.batch.unwrap_or(0),
            args.patch.unwrap_or(0)
        );
    }
    if args.profile_last_step && (args.steps == 0 || args.device == DeviceName::Cpu) {
        bail!(
            "--profile-last-step marks a training step for a CUDA profiler: it needs --steps 1 or more and a cuda:N --device (got --steps {} --device {})",
            args.steps,
            args.device
        );
    }
    let dev = args.device.open().context("--device")?;
    let mut reports = Vec::with_capacity(networks.len());
    for net in &networks {
        let inference = parse_inference(&args.inference, net.arch.scale)?;
        if let Some(lr) = inference {
            check_inference_memory(&net.arch, lr).with_context(|| {
                format!("--inference {} ({} network)", args.inference, net.name)
            })?;
        }
        let plan = SpeedPlan {
            batch: net.batch,
            patch: net.patch,
            steps: args.steps,
            warmup: args.warmup,
            inference,
            inference_runs: args.inference_runs,
            inference_warmup: args.inference_warmup,
            seed: args.seed,
            profile_last_step: args.profile_last_step,
        };
        // What the previous network freed would otherwise count in this
        // one's peaks (the allocator keeps freed memory for reuse).
        crate::ops::alloc::release_freed_memory();
        let mut report = measure(&plan, &net.arch, &args.device.to_string(), &dev)?;
        report.network = Some(net.name.to_string());
        if !args.json {
            print!("{}", table(&report));
        }
        reports.push(report);
    }
    if args.json {
        // One network: its object, as before; both: an array of them.
        match reports.as_slice() {
            [one] => println!("{}", serde_json::to_string(one)?),
            all => println!("{}", serde_json::to_string(all)?),
        }
    }
    Ok(())
}

/// A network `speed` times, with its training shape.
#[derive(Debug, Clone, PartialEq)]
struct Network {
    /// `seed`, `quick` or `custom` (genes given).
    name: &'static str,
    arch: Arch,
    batch: usize,
    patch: usize,
}

/// The quick-config network: 5 blocks, G0 16, 68,671 parameters, of the
/// size configs/quick.yaml's search draws (`benches/compare.sh` times it
/// beside PyTorch at batch 8 x 24x24).
pub const QUICK_GENES: &str = "G_6_16_16 C_4_16_24 G_4_8_8 G_4_16_16 G_8_8_24";

/// The networks to time: the one `--arch` names, or the seed and the
/// quick network.
fn networks(args: &SpeedArgs) -> Result<Vec<Network>> {
    let named = |name: &'static str, genes: &str, (g0, batch, patch)| -> Result<Network> {
        let arch = make_arch(args, GeneList::parse_args(&[genes])?, args.g0.unwrap_or(g0))?;
        Ok(Network {
            name,
            arch,
            batch: args.batch.unwrap_or(batch),
            patch: args.patch.unwrap_or(patch),
        })
    };
    let seed = || named("seed", SEED_GENES, (32, 16, 32));
    let quick = || named("quick", QUICK_GENES, (16, 8, 24));
    match args
        .arch
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => Ok(vec![seed()?, quick()?]),
        ["seed"] => Ok(vec![seed()?]),
        ["quick"] => Ok(vec![quick()?]),
        _ => {
            let genes = GeneList::parse_args(&args.arch)?;
            Ok(vec![Network {
                name: "custom",
                arch: make_arch(args, genes, args.g0.unwrap_or(32))?,
                batch: args.batch.unwrap_or(16),
                patch: args.patch.unwrap_or(32),
            }])
        }
    }
}

fn make_arch(args: &SpeedArgs, genes: GeneList, g0: usize) -> Result<Arch> {
    let arch = Arch {
        genes,
        g0,
        scale: args.scale as usize,
        bias: !args.no_bias,
    };
    crate::model::esrn::check_arch(&arch).map_err(|e| anyhow::anyhow!("--arch: {e}"))?;
    Ok(arch)
}

/// Parses `WxH` (an output size; the LR input is `W/scale × H/scale`) or
/// `none`; returns the LR (width, height).
pub fn parse_inference(text: &str, scale: usize) -> Result<Option<(usize, usize)>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)));
    match parsed {
        Some((w, h)) if w >= scale && h >= scale => Ok(Some((w / scale, h / scale))),
        _ => bail!(
            "--inference '{text}': expected an output size WxH of at least {scale}x{scale} (like 1280x720) or 'none'"
        ),
    }
}

/// Threads beyond this are refused (spawning them fails or thrashes).
const MAX_THREADS: usize = 1024;

/// The human-readable report.
fn table(r: &SpeedReport) -> String {
    let or_null = |v: Option<usize>| v.map_or("null".to_string(), |v| v.to_string());
    let mut out = format!(
        "{} network: {} blocks, G0 {}, x{}, {} params, {:.1} G Multi-Adds at 720p; device {}, threads {}\n",
        r.network.as_deref().unwrap_or("custom"),
        r.arch.split_whitespace().count(),
        r.g0,
        r.scale,
        r.params,
        r.multi_adds_720p as f64 / 1e9,
        r.device,
        or_null(r.threads),
    );
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let row = |name: &str, ms: Option<Stats>, gf: Option<f64>, peak: u64| {
        let gf = gf.map_or(String::new(), |g| format!("{g:7.1}"));
        let (median, min, max) =
            ms.map_or((f64::NAN, f64::NAN, f64::NAN), |s| (s.median, s.min, s.max));
        format!(
            "{name:<26} {median:>9.1} {min:>9.1} {max:>9.1} {gf:>9} {:>9.0}\n",
            mib(peak),
        )
    };
    out += &format!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "phase", "median ms", "min", "max", "GFLOP/s", "peak MiB"
    );
    if r.step_ms.is_some() {
        let what = format!("batch {} x 3x{p}x{p}", r.batch, p = r.patch);
        out += &format!("training, {what}, {} steps\n", r.steps);
        let (peaks, gf) = (&r.peak_rss_bytes, &r.train_gflops);
        out += &row("  forward + L1", r.forward_ms, gf.forward, peaks.forward);
        out += &row("  backward", r.backward_ms, gf.backward, peaks.backward);
        out += &row("  Adam", r.optimizer_ms, None, peaks.optimizer);
        out += &row("  whole step", r.step_ms, gf.step, peaks.overall);
    }
    if let Some(inf) = &r.inference {
        out += &row(
            &format!("inference {} -> {}", inf.input, inf.output),
            inf.ms,
            inf.gflops,
            inf.peak_rss_bytes,
        );
    }
    let estimate = |name: &str, estimate: Option<u64>, peak: u64| match estimate {
        Some(e) if peak > 0 => format!(
            "  {name}: estimated {:.0} MiB, measured peak {:.0} MiB ({:.2} of the estimate)\n",
            mib(e),
            mib(peak),
            peak as f64 / e as f64
        ),
        _ => String::new(),
    };
    let (e, peaks) = (&r.estimated_bytes, &r.peak_rss_bytes);
    if e.training.is_some() || e.inference.is_some() {
        out += "memory\n";
        out += &estimate(
            "training step",
            e.training,
            peaks.forward.max(peaks.backward),
        );
        out += &estimate("inference", e.inference, peaks.inference);
    }
    let load = serde_json::to_string(&r.load_average).unwrap_or_default();
    out += &format!("load average {load}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        speed: SpeedArgs,
    }

    fn nets(args: &[&str]) -> Result<Vec<Network>> {
        let cli = Cli::try_parse_from(std::iter::once("speed").chain(args.iter().copied()))?;
        networks(&cli.speed)
    }

    #[test]
    fn default_times_the_seed_and_the_quick_network() -> Result<()> {
        let both = nets(&[])?;
        let names: Vec<&str> = both.iter().map(|n| n.name).collect();
        assert_eq!(names, ["seed", "quick"]);
        let params: Vec<u64> = both.iter().map(|n| n.arch.cost().params).collect();
        assert_eq!(params, [520_595, 68_671]);
        let shapes: Vec<(usize, usize, usize)> =
            both.iter().map(|n| (n.arch.g0, n.batch, n.patch)).collect();
        assert_eq!(shapes, [(32, 16, 32), (16, 8, 24)]);
        // Given sizes apply to both; a name or genes pick one network.
        let small = nets(&["--batch", "2", "--patch", "8"])?;
        assert!(small.iter().all(|n| (n.batch, n.patch) == (2, 8)));
        assert_eq!(nets(&["--arch", "quick"])?, vec![both[1].clone()]);
        assert_eq!(nets(&["--arch", "seed"])?, vec![both[0].clone()]);
        let custom = nets(&["--arch", "S_4_8_8"])?;
        assert_eq!(
            (custom[0].name, custom[0].arch.g0, custom[0].batch),
            ("custom", 32, 16)
        );
        let e = nets(&["--arch", "quick", "--g0", "18"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--arch") && e.contains("18"), "{e}");
        Ok(())
    }

    #[test]
    fn inference_size_is_an_output_size() {
        assert_eq!(parse_inference("1280x720", 2).unwrap(), Some((640, 360)));
        assert_eq!(parse_inference("none", 3).unwrap(), None);
        assert_eq!(parse_inference("1280x720", 3).unwrap(), Some((426, 240)));
        for bad in ["720p", "0x0", "12x", "x5"] {
            let e = parse_inference(bad, 2).unwrap_err().to_string();
            assert!(e.contains("--inference") && e.contains(bad), "{e}");
        }
    }
}
