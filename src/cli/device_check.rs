//! `esr-ea device-check` (hidden): checks that the network computes the same
//! thing on a device as on the CPU, and optionally times inference there
//! (the measuring is [`crate::measure::device_check`]; this prints its
//! report). With `--device cpu` it compares the CPU with itself.

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::device::DeviceName;
use crate::measure::device_check::{check_case, default_cases, time_inference, CaseReport};

/// Arguments of `device-check`.
#[derive(Debug, Args)]
pub struct DeviceCheckArgs {
    /// Device to compare against the CPU: `cuda:N` (or `cpu`, which must match exactly).
    #[arg(long, default_value = "cuda:0")]
    pub device: DeviceName,
    /// Largest allowed difference, relative to the largest CPU value (output,
    /// or each parameter's gradient).
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f64,
    /// Also time inference of the seed network (x2) on an LR image of this
    /// size, e.g. `640x360` for a 1280x720 output.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub infer: Option<(usize, usize)>,
    /// Timed inference runs (after two warm-up runs).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `WxH` (both positive).
fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not a size: write WIDTHxHEIGHT, e.g. 640x360");
    let (w, h) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}

/// Runs `device-check`.
pub fn run(args: &DeviceCheckArgs) -> Result<()> {
    let dev = args.device.open().context("--device")?;
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bail!(
            "--tolerance {}: must be a finite number >= 0",
            args.tolerance
        );
    }
    let mut cases = Vec::new();
    for case in default_cases()? {
        cases.push(check_case(&case, &dev, args.tolerance)?);
    }
    let inference = match args.infer {
        Some(size) => Some(time_inference(&dev, size, args.repeat)?),
        None => None,
    };
    let ok = cases.iter().all(|c| c.ok);
    if args.json {
        let out = serde_json::json!({
            "device": args.device.to_string(),
            "cuda_build": cfg!(feature = "cuda"),
            "tolerance": args.tolerance,
            "ok": ok,
            "cases": cases,
            "inference": inference,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!(
            "{}",
            table(&args.device.to_string(), args.tolerance, &cases)
        );
        if let Some(inf) = &inference {
            println!(
                "inference {}x{} -> {}x{} on {}: first {:.1} ms, forward median {:.2} ms, with transfers {:.2} ms ({} runs)",
                inf.input[0],
                inf.input[1],
                inf.output[0],
                inf.output[1],
                args.device,
                inf.first_ms,
                inf.forward_median_ms,
                inf.end_to_end_median_ms,
                inf.forward_ms.len()
            );
        }
    }
    if !ok {
        let bad: Vec<&str> = cases
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        bail!(
            "{} differs from the CPU beyond the tolerance {} in: {}",
            args.device,
            args.tolerance,
            bad.join(", ")
        );
    }
    Ok(())
}

/// The human-readable report.
fn table(device: &str, tolerance: f64, cases: &[CaseReport]) -> String {
    let mut s = format!("{device} against cpu (tolerance {tolerance:e}, relative)\n");
    s.push_str(&format!(
        "{:<16} {:>15} {:>9} {:>9} {:>10} {:>10}  {:<38} {:>9} {:>9} {:>7}  ok\n",
        "case",
        "input",
        "fwd diff",
        "fwd rel",
        "loss cpu",
        "loss dev",
        "worst gradient",
        "grad rel",
        "adam rel",
        "dev s"
    ));
    for c in cases {
        let input = c
            .input
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        s.push_str(&format!(
            "{:<16} {:>15} {:>9.2e} {:>9.2e} {:>10.6} {:>10.6}  {:<38} {:>9.2e} {:>9.2e} {:>7.3}  {}\n",
            c.name,
            input,
            c.forward_max_abs_diff,
            c.forward_rel,
            c.loss_cpu,
            c.loss_device,
            c.grad_worst_param,
            c.grad_worst_rel,
            c.adam_rel.max(c.adam_norm_rel),
            c.device_seconds,
            if c.ok { "yes" } else { "NO" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_size("640x360"), Ok((640, 360)));
        assert_eq!(parse_size(" 8X4 "), Ok((8, 4)));
        for bad in ["640", "0x4", "ax4", "4x", "-1x2"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(bad.trim()), "{err}");
        }
    }
}
