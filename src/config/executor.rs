//! The top-level `executor:` section (esr-ea only): where the search's
//! trainings run. Absent or `type: local`: worker threads of the `search`
//! process (`--devices`). `type: slurm`: one batch job per evaluation.
//!
//! ```yaml
//! executor:
//!   type: slurm
//!   partition: gpu          # sbatch --partition
//!   gres: gpu:1             # sbatch --gres (one GPU per job)
//!   cpus_per_task: 4        # sbatch --cpus-per-task (also the job's threads)
//!   mem: 8G                 # sbatch --mem
//!   time: "00:30:00"        # sbatch --time
//!   account: my-lab         # sbatch --account
//!   qos: normal             # sbatch --qos
//!   extra_args: [--constraint=a100]
//!   max_in_flight: 8        # jobs queued or running at once
//! ```

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use super::error::ConfigError;
use super::reader::{Node, Reader};

/// `executor:`: local worker threads, or Slurm batch jobs.
// One value per configuration: boxing the Slurm settings would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum ExecutorConfig {
    /// Worker threads of the `search` process, one per `--devices` entry.
    #[default]
    Local,
    /// One Slurm batch job per evaluation.
    Slurm(SlurmSettings),
}

/// How evaluations are submitted to Slurm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlurmSettings {
    /// `partition`: `sbatch --partition`; `None`: the cluster's default.
    pub partition: Option<String>,
    /// `gres`: `sbatch --gres`, e.g. `gpu:1`.
    pub gres: Option<String>,
    /// `cpus_per_task`: `sbatch --cpus-per-task`; the job trains on that many threads.
    pub cpus_per_task: Option<u64>,
    /// `mem`: `sbatch --mem`, e.g. `8G`.
    pub mem: Option<String>,
    /// `time`: `sbatch --time`, e.g. `00:30:00`.
    pub time: Option<String>,
    /// `account`: `sbatch --account`.
    pub account: Option<String>,
    /// `qos`: `sbatch --qos`.
    pub qos: Option<String>,
    /// `extra_args`: more `sbatch` arguments, passed as they are.
    pub extra_args: Vec<String>,
    /// `max_in_flight`: jobs queued or running at once (default 4).
    pub max_in_flight: usize,
    /// `device`: what a job trains on; default `cuda:0` when `gres` asks for
    /// a GPU (Slurm makes the job's GPU device 0), else `cpu`.
    pub device: Option<String>,
    /// `program`: the `esr-ea` binary as the compute nodes see it; default
    /// the running coordinator's own binary (fine on a shared filesystem).
    pub program: Option<String>,
    /// `poll_seconds`: how often `squeue` is asked about the jobs (default 2).
    pub poll_seconds: f64,
}

impl Default for SlurmSettings {
    fn default() -> SlurmSettings {
        SlurmSettings {
            partition: None,
            gres: None,
            cpus_per_task: None,
            mem: None,
            time: None,
            account: None,
            qos: None,
            extra_args: Vec::new(),
            max_in_flight: 4,
            device: None,
            program: None,
            poll_seconds: 2.0,
        }
    }
}

impl SlurmSettings {
    /// The device a job trains on (see [`SlurmSettings::device`]).
    pub fn job_device(&self) -> String {
        match &self.device {
            Some(d) => d.clone(),
            None if self.gres.as_deref().is_some_and(|g| g.contains("gpu")) => "cuda:0".into(),
            None => "cpu".into(),
        }
    }
}

/// Reads the top-level `executor` section.
pub(crate) fn parse(r: &mut Reader, root: &Node) -> Result<ExecutorConfig, ConfigError> {
    let Some(node) = r.section(root, "executor")? else {
        return Ok(ExecutorConfig::Local);
    };
    let kind = match r.get(&node, "type")? {
        Some(t) => r.word(&t, &["local", "slurm"])?,
        None => {
            return Err(r.error(
                &node.key_path("type"),
                "missing: the executor's type (local or slurm)",
            ))
        }
    };
    if kind == "local" {
        return Ok(ExecutorConfig::Local);
    }
    let mut s = SlurmSettings::default();
    let text = |r: &mut Reader, key: &str| -> Result<Option<String>, ConfigError> {
        r.get(&node, key)?
            .map(|n| match n.value {
                Value::Number(x) => Ok(x.to_string()),
                _ => r.string(&n),
            })
            .transpose()
    };
    s.partition = text(r, "partition")?;
    s.gres = text(r, "gres")?;
    s.mem = text(r, "mem")?;
    s.time = text(r, "time")?;
    s.account = text(r, "account")?;
    s.qos = text(r, "qos")?;
    s.device = text(r, "device")?;
    s.program = text(r, "program")?;
    if let Some(n) = r.get(&node, "cpus_per_task")? {
        s.cpus_per_task = Some(r.whole(&n, 1)?);
    }
    if let Some(n) = r.get(&node, "max_in_flight")? {
        s.max_in_flight = r.count(&n, 1)?;
    }
    if let Some(n) = r.get(&node, "poll_seconds")? {
        s.poll_seconds = r.positive(&n)?;
    }
    if let Some(n) = r.get(&node, "extra_args")? {
        s.extra_args = r.seq(&n, |item| r.string(item))?;
    }
    Ok(ExecutorConfig::Slurm(s))
}

/// The section as YAML, for the run's `config.yaml`; `Null` (left out) for local.
pub(crate) fn emit(c: &ExecutorConfig) -> Value {
    let ExecutorConfig::Slurm(s) = c else {
        return Value::Null;
    };
    let mut m = Mapping::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            m.insert(Value::from(k), v);
        }
    };
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::from);
    put("type", "slurm".into());
    put("partition", text(&s.partition));
    put("gres", text(&s.gres));
    put(
        "cpus_per_task",
        s.cpus_per_task.map_or(Value::Null, Value::from),
    );
    put("mem", text(&s.mem));
    put("time", text(&s.time));
    put("account", text(&s.account));
    put("qos", text(&s.qos));
    put(
        "extra_args",
        Value::Sequence(s.extra_args.iter().cloned().map(Value::from).collect()),
    );
    put("max_in_flight", s.max_in_flight.into());
    put("device", text(&s.device));
    put("program", text(&s.program));
    put("poll_seconds", s.poll_seconds.into());
    Value::Mapping(m)
}
