//! `--executor` and the Slurm flags, shared by the subcommands whose
//! trainings run through an executor (`search`, `study`).

use anyhow::{bail, Result};
use clap::Args;

use crate::config::{ExecutorConfig, SlurmSettings};

/// `--executor` and the Slurm settings that override the config's `executor:` block.
#[derive(Debug, Args, Default)]
pub struct SlurmArgs {
    /// Where trainings run: `local` or `slurm` (overrides `executor.type`).
    #[arg(long, value_name = "TYPE", value_enum)]
    pub executor: Option<ExecutorArg>,
    /// Slurm partition (`executor.partition`).
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// Slurm generic resources per job, e.g. `gpu:1` (`executor.gres`).
    #[arg(long, value_name = "GRES")]
    pub gres: Option<String>,
    /// CPUs per Slurm job (`executor.cpus_per_task`).
    #[arg(long, value_name = "N")]
    pub cpus_per_task: Option<u64>,
    /// Memory per Slurm job, e.g. `8G` (`executor.mem`).
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Time limit per Slurm job, e.g. `00:30:00` (`executor.time`).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// Slurm account (`executor.account`).
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Slurm QOS (`executor.qos`).
    #[arg(long, value_name = "NAME")]
    pub qos: Option<String>,
    /// One more sbatch argument, repeatable (added to `executor.extra_args`).
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Slurm jobs queued or running at once (`executor.max_in_flight`).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
}

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    /// Worker threads on this machine (`--devices`).
    Local,
    /// One Slurm batch job per training.
    Slurm,
}

impl SlurmArgs {
    /// The config's executor with these flags applied.
    pub fn apply(&self, config: &ExecutorConfig) -> Result<ExecutorConfig> {
        let mut settings = match (self.executor, config) {
            (Some(ExecutorArg::Local), _) => return Ok(ExecutorConfig::Local),
            (_, ExecutorConfig::Slurm(s)) => s.clone(),
            (Some(_), ExecutorConfig::Local) => SlurmSettings::default(),
            (None, ExecutorConfig::Local) => {
                if self.any_slurm_setting() {
                    bail!("--partition, --gres, ... set Slurm options, but the executor is local: add --executor slurm");
                }
                return Ok(ExecutorConfig::Local);
            }
        };
        let set = |target: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                target.clone_from(value);
            }
        };
        set(&mut settings.partition, &self.partition);
        set(&mut settings.gres, &self.gres);
        set(&mut settings.mem, &self.mem);
        set(&mut settings.time, &self.time);
        set(&mut settings.account, &self.account);
        set(&mut settings.qos, &self.qos);
        if let Some(c) = self.cpus_per_task {
            if c == 0 {
                bail!("--cpus-per-task: 0 is not allowed (1 or more)");
            }
            settings.cpus_per_task = Some(c);
        }
        if let Some(n) = self.max_in_flight {
            if n == 0 {
                bail!("--max-in-flight: 0 is not allowed (1 or more)");
            }
            settings.max_in_flight = n;
        }
        settings.extra_args.extend(self.sbatch_args.iter().cloned());
        Ok(ExecutorConfig::Slurm(settings))
    }

    fn any_slurm_setting(&self) -> bool {
        self.partition.is_some()
            || self.gres.is_some()
            || self.cpus_per_task.is_some()
            || self.mem.is_some()
            || self.time.is_some()
            || self.account.is_some()
            || self.qos.is_some()
            || !self.sbatch_args.is_empty()
            || self.max_in_flight.is_some()
    }
}
