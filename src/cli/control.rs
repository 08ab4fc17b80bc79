//! `esr-ea control`: steer a search running elsewhere (another SSH session,
//! a headless run) through its run directory's `control.jsonl`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use crate::engine::control::send_command;
use crate::engine::rundir::{files, RunDir};
use crate::engine::Command;
use crate::space::GeneList;

/// Arguments of `control`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The run directory of the running search.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// What to ask.
    #[command(subcommand)]
    pub action: Action,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Start no new training (the one in flight finishes).
    Pause,
    /// Start training again.
    Resume,
    /// Checkpoint and stop the search (resumable).
    Stop,
    /// Stop one individual's training; it gets no fitness.
    Kill {
        /// Member id (as shown in the progress lines, `#12`).
        id: u64,
    },
    /// Re-sample a queued individual's genes, or set them.
    Mutate {
        /// Member id.
        id: u64,
        /// Genes to set; none to mutate at random.
        genes: Vec<String>,
    },
    /// Add an individual by hand.
    Inject {
        /// Its genes.
        #[arg(required = true)]
        genes: Vec<String>,
    },
    /// Export the best architectures.
    Export {
        /// How many.
        #[arg(long, default_value_t = 4)]
        top: usize,
    },
}

/// Runs `control`.
pub fn run(args: &ControlArgs) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let command = match &args.action {
        Action::Pause => Command::Pause,
        Action::Resume => Command::Resume,
        Action::Stop => Command::Stop,
        Action::Kill { id } => Command::Kill { id: *id },
        Action::Mutate { id, genes } => {
            if !genes.is_empty() {
                GeneList::parse_args(genes)?;
            }
            Command::Mutate {
                id: *id,
                genes: (!genes.is_empty()).then(|| genes.clone()),
            }
        }
        Action::Inject { genes } => {
            GeneList::parse_args(genes)?;
            Command::Inject {
                genes: genes.clone(),
            }
        }
        Action::Export { top } => {
            if *top == 0 {
                bail!("--top 0: export at least one architecture");
            }
            Command::Export {
                top: *top,
                dir: None,
            }
        }
    };
    // A search only reads lines appended while it runs: without one, the
    // command would be silently lost, so it is not written at all.
    let Some(holder) = crate::engine::lock::holder(run.path())? else {
        bail!(
            "no search is running on {} (its run lock is free): nothing sent; resume it with `esr-ea search --resume {}`",
            run.path().display(),
            run.path().display()
        );
    };
    send_command(&run.file(files::CONTROL), &command)?;
    println!(
        "sent {} to the search in {} ({}); it answers in its log / events.jsonl",
        serde_json::to_string(&command)?,
        run.path().display(),
        holder.describe()
    );
    Ok(())
}
