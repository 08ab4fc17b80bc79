//! `esr-ea train`: fully train an architecture (or continue a model), with
//! periodic checkpoints and exact resume.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;

use super::load_config;
use super::progress::Progress;
use crate::device::DeviceName;
use crate::format::thousands;
use crate::fsutil::atomic_write;
use crate::model::checkpoint::load_model;
use crate::space::GeneList;
use crate::train::datasets::{load_for, Role};
use crate::train::trainer::{TrainPlan, Trainer};

/// Arguments of `train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture to train from scratch, e.g. `G_8_16_24 C_8_16_16` or a list string.
    #[arg(long, value_name = "GENES", num_args = 1.., conflicts_with = "model", required_unless_present_any = ["model", "resume"])]
    pub arch: Vec<String>,
    /// Continue training a model file (from `export` or an earlier `train`).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Configuration (its `fully_train` section); default: the embedded quick config.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Train this many optimiser steps (milestones scaled along).
    #[arg(long, conflicts_with = "epochs", value_parser = super::at_least_one)]
    pub steps: Option<usize>,
    /// Train this many epochs (passes over the training images).
    #[arg(long, value_parser = super::at_least_one)]
    pub epochs: Option<usize>,
    /// Output folder: checkpoints and the final `model.safetensors`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the training saved in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Device: `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceName,
    /// Seed for weights and patches (default: the config's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Save a checkpoint every N steps (default: a tenth of the training).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
}

/// Runs `train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let config = load_config(args.config.as_deref())?;
    let dev = args.device.open().context("--device")?;
    let scale = config.search_space.scale;
    let crop = config.full_dataset.train.crop;
    let cache = super::data_cache(&config);
    let train = Arc::new(load_for(
        &config.full_dataset.train,
        scale,
        Role::Training { crop },
        &cache,
    )?);
    let val = load_for(&config.full_dataset.test, scale, Role::Scoring, &cache)?;
    let seed = args.seed.unwrap_or(config.seed);
    let mut trainer = if args.resume {
        if !args.out.join("trainer.json").is_file() {
            bail!(
                "--resume: {} holds no training to resume (no trainer.json)",
                args.out.display()
            );
        }
        let mut t = Trainer::resume(&args.out, train.clone(), &dev)?;
        if let Some(steps) = args.steps {
            t.extend_to(steps);
        }
        t
    } else {
        if args.out.join("trainer.json").is_file() {
            bail!(
                "{} already holds a training: add --resume to continue it, or choose another --out",
                args.out.display()
            );
        }
        let mut trainer_cfg = config.full_trainer.clone();
        if let Some(epochs) = args.epochs {
            trainer_cfg.epochs = epochs;
            trainer_cfg.steps = None;
        }
        let mut plan =
            TrainPlan::from_config(&trainer_cfg, &config.full_dataset.train, train.len());
        if let Some(steps) = args.steps {
            plan = plan.with_steps(steps);
        }
        match &args.model {
            Some(path) => {
                let (model, varmap) = load_model(path, &dev)?;
                if model.arch().scale != scale {
                    bail!(
                        "{} is a x{} model but the config's data is for x{scale}",
                        path.display(),
                        model.arch().scale
                    );
                }
                Trainer::with_model(model, varmap, plan, train.clone(), seed, &dev)?
            }
            None => {
                let genes = GeneList::parse_args(&args.arch)?;
                let arch = config.search_space.arch(genes);
                Trainer::new(&arch, plan, train.clone(), seed, &dev)?
            }
        }
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let steps = trainer.plan().steps;
    let every = args.checkpoint_every.unwrap_or((steps / 10).max(1)).max(1);
    let arch = trainer.model.arch().clone();
    println!(
        "training {} ({} params, x{}) for {steps} steps from step {} on {}; checkpoints every {every} steps in {}",
        arch.genes,
        thousands(arch.cost().params),
        arch.scale,
        trainer.step(),
        args.device,
        args.out.display()
    );
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&interrupted));
    }
    let mut progress = Progress::new("train", steps);
    let finished = trainer.train_to(steps, |trainer, r| {
        progress.update(r.step, &format!("loss {:.5}", r.loss));
        if r.step % every == 0 || r.step == steps {
            trainer.save_checkpoint(&args.out)?;
        }
        Ok::<_, anyhow::Error>(!interrupted.load(Ordering::SeqCst))
    })?;
    if !finished {
        trainer.save_checkpoint(&args.out)?;
        progress.finish();
        return Err(super::exit::Interrupted(format!(
            "interrupted at step {}: checkpoint saved; continue with --resume --out {}",
            trainer.step(),
            args.out.display()
        ))
        .into());
    }
    progress.finish();
    trainer.save_checkpoint(&args.out)?;
    let score = trainer.validate(&val)?;
    let bicubic = crate::metrics::Score::bicubic(&val, scale)?;
    let (bic_psnr, bic_ssim) = (bicubic.psnr, bicubic.ssim);
    println!(
        "validation ({} images): PSNR {:.3} dB, SSIM {:.4}; bicubic {:.3} dB, {:.4} ({:+.3} dB)",
        val.len(),
        score.psnr,
        score.ssim,
        bic_psnr,
        bic_ssim,
        score.psnr - bic_psnr
    );
    let report = json!({
        "arch": arch.genes.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
        "scale": arch.scale,
        "params": arch.cost().params,
        "steps": steps,
        "final_loss": trainer.losses.last(),
        "psnr": score.psnr,
        "ssim": score.ssim,
        "bicubic_psnr": bic_psnr,
        "bicubic_ssim": bic_ssim,
        "images": score.images,
    });
    atomic_write(
        &args.out.join("score.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    println!("model: {}", args.out.join("model.safetensors").display());
    Ok(())
}
