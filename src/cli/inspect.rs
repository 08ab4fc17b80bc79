//! `esr-ea inspect`: per-block costs of an architecture.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;

use crate::format::thousands;
use crate::space::{Arch, GeneList};

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Upscaling factor.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=4))]
    pub scale: u8,
    /// Channels of the shallow features and global fusion (a multiple of 4).
    #[arg(long, default_value_t = 32)]
    pub g0: usize,
    /// Count convolutions without biases (the reference's 1.x network).
    #[arg(long)]
    pub no_bias: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Block genes such as `G_8_16_24 C_8_16_16`, or one list string
    /// `"['G_8_16_24', 'C_8_16_16']"` as the reference prints them.
    #[arg(required = true, value_name = "GENE")]
    pub genes: Vec<String>,
}

/// Runs `inspect`.
pub fn run(args: &InspectArgs) -> Result<()> {
    if args.g0 > crate::space::gene::MAX_CHANNELS {
        bail!(
            "--g0 {}: too many channels (allowed: a multiple of 4 up to {})",
            args.g0,
            crate::space::gene::MAX_CHANNELS
        );
    }
    if args.g0 == 0 || args.g0 % 4 != 0 {
        bail!(
            "--g0 {}: G0 must be a positive multiple of 4 (the upsampler pixel-shuffles 3*G0 channels)",
            args.g0
        );
    }
    let genes = GeneList::parse_args(&args.genes)?;
    let arch = Arch {
        genes,
        g0: args.g0,
        scale: args.scale as usize,
        bias: !args.no_bias,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&arch))?);
    } else {
        print!("{}", report_table(&arch));
    }
    Ok(())
}

/// The JSON form of the report.
pub fn report_json(arch: &Arch) -> serde_json::Value {
    let cost = arch.cost();
    let estimate = arch.reference_estimate();
    let blocks: Vec<_> = cost
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({
                "index": i,
                "gene": b.gene.to_string(),
                "kind": b.gene.kind.to_string(),
                "convs": b.gene.convs,
                "growth": b.gene.growth,
                "in_channels": b.in_ch,
                "out_channels": b.out_ch,
                "params": b.params,
                "multi_adds": b.multi_adds,
            })
        })
        .collect();
    json!({
        "genes": arch.genes.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
        "scale": arch.scale,
        "g0": arch.g0,
        "bias": arch.bias,
        "params": cost.params,
        "multi_adds": cost.multi_adds,
        "multi_adds_output": "1280x720",
        "stem_params": cost.stem_params,
        "stem_multi_adds": cost.stem_multi_adds,
        "reference_estimate_params": estimate.params,
        "reference_estimate_flops": estimate.flops,
        "blocks": blocks,
    })
}

fn giga(n: u64) -> String {
    format!("{:.2}", n as f64 / 1e9)
}

/// The table form of the report.
pub fn report_table(arch: &Arch) -> String {
    let cost = arch.cost();
    let estimate = arch.reference_estimate();
    let mut out = String::new();
    out.push_str(&format!(
        "{:>3}  {:<11} {:<10} {:>5} {:>6} {:>9} {:>10} {:>10}\n",
        "#", "block", "kind", "convs", "growth", "in->out", "params", "MAdds (G)"
    ));
    for (i, b) in cost.blocks.iter().enumerate() {
        out.push_str(&format!(
            "{:>3}  {:<11} {:<10} {:>5} {:>6} {:>9} {:>10} {:>10}\n",
            i + 1,
            b.gene.to_string(),
            b.gene.kind.long_name(),
            b.gene.convs,
            b.gene.growth,
            format!("{}->{}", b.in_ch, b.out_ch),
            thousands(b.params),
            giga(b.multi_adds)
        ));
    }
    out.push_str(&format!(
        "{:>3}  {:<44} {:>10} {:>10}\n",
        "",
        "shallow features + fusion + upsampler",
        thousands(cost.stem_params),
        giga(cost.stem_multi_adds)
    ));
    let diff = estimate.params as i64 - cost.params as i64;
    out.push_str(&format!(
        "\nblocks: {}   scale: x{}   G0: {}   biases: {}\n",
        arch.genes.len(),
        arch.scale,
        arch.g0,
        if arch.bias { "yes" } else { "no" }
    ));
    out.push_str(&format!(
        "params (exact):       {}\n",
        thousands(cost.params)
    ));
    out.push_str(&format!(
        "params (reference's estimate, for comparison only): {} ({:+})\n",
        thousands(estimate.params),
        diff
    ));
    out.push_str(&format!(
        "Multi-Adds:           {} G for a 1280x720 output\n",
        giga(cost.multi_adds)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_arch() -> Arch {
        Arch {
            genes: GeneList::parse_args(&["['G_8_16_24', 'C_8_16_16', 'S_4_24_32']"]).unwrap(),
            g0: 32,
            scale: 2,
            bias: true,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let arch = seed_arch();
        let v = report_json(&arch);
        assert_eq!(v["params"].as_u64().unwrap(), arch.cost().params);
        assert_eq!(v["multi_adds"].as_u64().unwrap(), arch.cost().multi_adds);
        assert_eq!(
            v["reference_estimate_params"].as_u64().unwrap(),
            arch.reference_estimate().params
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[1]["gene"], "C_8_16_16");
        assert_eq!(blocks[1]["in_channels"], 24);
        let block_sum: u64 = blocks.iter().map(|b| b["params"].as_u64().unwrap()).sum();
        assert_eq!(
            block_sum + v["stem_params"].as_u64().unwrap(),
            arch.cost().params
        );
    }

    #[test]
    fn table_lists_every_block_and_totals() {
        let text = report_table(&seed_arch());
        assert!(text.contains("G_8_16_24"));
        assert!(text.contains("contextual"));
        assert!(text.contains("32->24"));
        assert!(text.contains(&thousands(seed_arch().cost().params)));
        assert!(text.contains("1280x720"));
    }
}
