//! `esr-ea control`: steer a search running elsewhere (another SSH session,
//! a headless run) through its run directory's `control.jsonl`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use crate::engine::control::{answer_to, ask_command};
use crate::engine::run_view::RunInfo;
use crate::engine::rundir::{files, problem_of_run, RunDir};
use crate::engine::{Command, Event, RunView};
use crate::tui::tail::Tail;
use crate::tui::validate::check_genes;

/// Arguments of `control`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// The run directory of the running search.
    #[arg(value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Seconds to wait for the search's answer.
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    pub wait: f64,
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
        /// Member id, as the dashboard and progress lines show it (`12` or `#12`).
        #[arg(value_parser = member_id)]
        id: u64,
    },
    /// Re-sample a queued individual's genes, or set them.
    Mutate {
        /// Member id (`12` or `#12`).
        #[arg(value_parser = member_id)]
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

/// A member id as typed: `12` or the dashboard's `#12`.
fn member_id(text: &str) -> Result<u64, String> {
    text.trim()
        .trim_start_matches('#')
        .parse()
        .map_err(|_| format!("'{text}' is not a member id (a whole number such as 12 or #12)"))
}

/// Runs `control`: checks the command as the dashboard would, sends it, and
/// waits for the search's answer. Exits non-zero when the search refused it
/// or did not answer in time.
pub fn run(args: &ControlArgs) -> Result<()> {
    let run = RunDir::open(&args.run)?;
    let command = match &args.action {
        Action::Pause => Command::Pause,
        Action::Resume => Command::Resume,
        Action::Stop => Command::Stop,
        Action::Kill { id } => Command::Kill { id: *id },
        Action::Mutate { id, genes } => Command::Mutate {
            id: *id,
            genes: (!genes.is_empty()).then(|| genes.clone()),
        },
        Action::Inject { genes } => Command::Inject {
            genes: genes.clone(),
        },
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
    // One read of the event log: its history for the checks, then what the
    // search appends after the command, where its answer comes.
    let mut events = Tail::new(&run.file(files::EVENTS));
    if let Some(why) = refusal(&run, &command, &events.poll())? {
        bail!("{why}: nothing sent");
    }
    let sent = serde_json::to_string(&command)?;
    let timeout = Duration::from_secs_f64(args.wait.max(0.0));
    let ack = ask_command(&run.file(files::CONTROL), &command)?;
    match events.wait_for(timeout, |e| answer_to(e, &ack)) {
        Some(answer) if answer.accepted => {
            println!("{} ({})", answer.message, holder.describe());
            Ok(())
        }
        Some(answer) => bail!("the search refused {sent}: {}", answer.message),
        None => bail!(
            "sent {sent} to the search in {} ({}), but it did not answer within {:.0} s; its log / events.jsonl will say whether it was carried out",
            run.path().display(),
            holder.describe(),
            timeout.as_secs_f64()
        ),
    }
}

/// What the dashboard would refuse, from the run's events so far and its
/// problem (member ids and states, the stage, hand genes and the budget).
fn refusal(run: &RunDir, command: &Command, history: &[Event]) -> Result<Option<String>> {
    let problem = problem_of_run(run.path())?;
    let genes = match command {
        Command::Inject { genes } => Some(genes),
        Command::Mutate {
            genes: Some(genes), ..
        } => Some(genes),
        _ => None,
    };
    if let Some(genes) = genes {
        if let Err(why) = check_genes(&problem, &genes.join(" ")) {
            return Ok(Some(format!(
                "{} {}: {why}",
                command.verb(),
                genes.join(" ")
            )));
        }
    }
    let mut view = RunView::new(RunInfo::planned(&problem));
    for event in history {
        view.apply(event);
    }
    Ok(view.refusal(command))
}
