//! What the engine tells its front ends, and what they may ask of it.
//!
//! Both are plain serde types: the engine appends every event to
//! `events.jsonl`, the TUI and headless printer consume the same stream, and
//! commands arrive as JSON lines in the run's control file (`control.jsonl`).

use serde::{Deserialize, Serialize};

use crate::search::{Evaluation, Member, Stop};

/// One thing that happened in a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run started or resumed.
    RunStarted {
        /// Run name (the run directory's name).
        run: String,
        /// Devices training runs on.
        devices: Vec<String>,
        /// Generations in total.
        generations: usize,
        /// Individuals per generation.
        individuals: usize,
        /// Budget, inclusive.
        min_params: u64,
        /// Budget, inclusive.
        max_params: u64,
        /// True when continuing a saved state.
        resumed: bool,
        /// Bicubic PSNR on the fitness's validation images, when known: every
        /// fitness is also shown as dB over it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bicubic_psnr: Option<f64>,
    },
    /// A generation's members are known (new population, or after a hand change).
    Generation {
        /// 0-based generation.
        generation: usize,
        /// Its members as they stand.
        members: Vec<Member>,
    },
    /// A member waits for a worker.
    Queued {
        /// Member id.
        id: u64,
    },
    /// A worker began training a member.
    Started {
        /// Member id.
        id: u64,
        /// Device it runs on.
        device: String,
        /// Training steps planned.
        steps: usize,
    },
    /// A member's outside job (Slurm) changed state or node.
    JobState {
        /// Member id.
        id: u64,
        /// Slurm job id.
        job: String,
        /// Slurm's state: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, …
        state: String,
        /// Node(s) it runs on; empty while pending.
        node: String,
        /// Seconds since it was submitted (or adopted).
        waited: f64,
    },
    /// Training progress.
    Progress {
        /// Member id.
        id: u64,
        /// Steps done.
        step: usize,
        /// Steps planned.
        steps: usize,
        /// Training loss (L1) of the last step.
        loss: f64,
        /// Learning rate of the last step.
        lr: f64,
    },
    /// A member was trained and validated.
    Evaluated {
        /// Member id.
        id: u64,
        /// Its result.
        evaluation: Evaluation,
        /// Exact params.
        params: u64,
        /// Multi-Adds at 720p.
        multi_adds: u64,
    },
    /// A member reused the result of an identical architecture.
    Cached {
        /// Member id.
        id: u64,
        /// The reused result.
        evaluation: Evaluation,
    },
    /// A member's training failed.
    Failed {
        /// Member id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// A member was stopped by hand.
    Killed {
        /// Member id.
        id: u64,
    },
    /// The median stopping rule stopped a member (`nas.trainer.median_stop`).
    Stopped {
        /// Member id.
        id: u64,
        /// Where and why.
        stop: Stop,
    },
    /// A generation finished; elitism done.
    GenerationDone {
        /// 0-based generation.
        generation: usize,
        /// Best fitness of the generation.
        best: Option<f64>,
        /// Mean fitness of the generation.
        mean: Option<f64>,
        /// Elites after it.
        elites: Vec<Member>,
    },
    /// No new training starts until resumed.
    Paused,
    /// Training starts again.
    Resumed,
    /// Something worth telling a person.
    Log {
        /// `info`, `warn` or `error`.
        level: String,
        /// The message.
        message: String,
    },
    /// Best architectures were exported.
    Exported {
        /// Where.
        dir: String,
        /// How many.
        count: usize,
    },
    /// The answer to a command that asked for one (`esr-ea control` waits
    /// for it): whether the search took it, and what it did or why not.
    Answered {
        /// The token the command carried.
        ack: String,
        /// True when the command was carried out (or already in effect).
        accepted: bool,
        /// What was done, or why it was refused (the log line's text).
        message: String,
    },
    /// The search ended (all generations done, or stopped).
    Finished {
        /// True when every generation completed; false when stopped early.
        complete: bool,
        /// Elites at the end.
        elites: Vec<Member>,
        /// Members that reused a cached result.
        cache_hits: u64,
    },
    /// A stage of the pipeline began (`search`, `fully_train`, `benchmark_<Name>`, `report`).
    StageStarted {
        /// Its name.
        stage: String,
        /// 0-based position in the pipeline.
        index: usize,
        /// Stages in the pipeline.
        stages: usize,
    },
    /// A stage finished.
    StageDone {
        /// Its name.
        stage: String,
        /// Wall seconds spent in it (summed over resumed runs).
        seconds: f64,
    },
    /// A finalist's full training began (or resumed from its checkpoint).
    FinalStarted {
        /// Rank in the search (1 = best).
        rank: usize,
        /// The search member it came from.
        member_id: u64,
        /// Its genes.
        genes: Vec<String>,
        /// Exact params.
        params: u64,
        /// Steps done already (from a checkpoint).
        step: usize,
        /// Steps planned.
        steps: usize,
        /// Device it trains on.
        device: String,
        /// Bicubic PSNR on the validation images (the line to beat).
        bicubic_psnr: f64,
    },
    /// A finalist's training progress.
    FinalProgress {
        /// Rank.
        rank: usize,
        /// Steps done.
        step: usize,
        /// Steps planned.
        steps: usize,
        /// Training loss (L1) of the last step.
        loss: f64,
        /// Estimated seconds left for this finalist.
        eta_seconds: f64,
    },
    /// A finalist was validated during its training.
    FinalValidated {
        /// Rank.
        rank: usize,
        /// Steps done.
        step: usize,
        /// Validation PSNR (dB).
        psnr: f64,
    },
    /// A finalist finished its full training.
    FinalDone {
        /// Rank.
        rank: usize,
        /// Final validation PSNR (dB).
        psnr: f64,
        /// Final validation SSIM.
        ssim: f64,
        /// Bicubic PSNR on the same images.
        bicubic_psnr: f64,
        /// Wall seconds of its training.
        seconds: f64,
        /// Its weights file.
        model: String,
    },
    /// One row of a benchmark table: a method's mean scores on one set.
    BenchRow {
        /// Set name (`Set5`).
        set: String,
        /// Images in the set.
        images: usize,
        /// Finalist rank, or `None` for bicubic.
        rank: Option<usize>,
        /// Mean Y-PSNR (dB).
        psnr: f64,
        /// Mean Y-SSIM.
        ssim: f64,
    },
    /// The whole pipeline ended: every stage done, stopped, or ended early
    /// by `--stop-after`.
    PipelineDone {
        /// True when every stage it was asked to run finished.
        complete: bool,
        /// The best finalist's weights, once trained.
        model: Option<String>,
        /// The report, once written.
        report: Option<String>,
        /// The stage `--stop-after` ended the run after, when it did: the
        /// later stages wait for a `--resume`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stopped_after: Option<String>,
    },
}

/// A request from a front end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Start no new training (the one in flight finishes).
    Pause,
    /// Start training again.
    Resume,
    /// Stop a member's training now; it gets no fitness.
    Kill {
        /// Member id.
        id: u64,
    },
    /// Re-sample a queued member's genes with the search's own mutation and
    /// repair, or set them to `genes` (validated against the budget).
    Mutate {
        /// Member id.
        id: u64,
        /// Genes to set, as strings; `None` to mutate at random.
        genes: Option<Vec<String>>,
    },
    /// Add a hand-made member to the current generation.
    Inject {
        /// Its genes, as strings.
        genes: Vec<String>,
    },
    /// Export the best `top` architectures with their weights.
    Export {
        /// How many.
        top: usize,
        /// Where; default `<run>/export`.
        dir: Option<String>,
    },
    /// Checkpoint and exit cleanly.
    Stop,
}

/// What the search made of a command: carried out (`accepted`) or refused,
/// with the sentence its log shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// True when the command was carried out (or was already in effect).
    pub accepted: bool,
    /// What was done, or why not.
    pub message: String,
}

impl Answer {
    /// A command carried out.
    pub fn yes(message: impl Into<String>) -> Answer {
        Answer {
            accepted: true,
            message: message.into(),
        }
    }

    /// A command refused.
    pub fn no(message: impl Into<String>) -> Answer {
        Answer {
            accepted: false,
            message: message.into(),
        }
    }

    /// The event that carries this answer to whoever asked with `ack`.
    pub fn event(self, ack: String) -> Event {
        Event::Answered {
            ack,
            accepted: self.accepted,
            message: self.message,
        }
    }
}

impl Command {
    /// Its name as typed (`kill`, `inject`, ...).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Kill { .. } => "kill",
            Command::Mutate { .. } => "mutate",
            Command::Inject { .. } => "inject",
            Command::Export { .. } => "export",
            Command::Stop => "stop",
        }
    }
}

impl Event {
    /// The member this event is about, if any.
    pub fn member_id(&self) -> Option<u64> {
        match self {
            Event::Queued { id }
            | Event::Started { id, .. }
            | Event::JobState { id, .. }
            | Event::Progress { id, .. }
            | Event::Evaluated { id, .. }
            | Event::Cached { id, .. }
            | Event::Failed { id, .. }
            | Event::Killed { id }
            | Event::Stopped { id, .. } => Some(*id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_json_lines_a_script_can_write() {
        let c: Command = serde_json::from_str(r#"{"command":"kill","id":3}"#).unwrap();
        assert_eq!(c, Command::Kill { id: 3 });
        let c: Command =
            serde_json::from_str(r#"{"command":"inject","genes":["S_4_16_24","G_4_8_16"]}"#)
                .unwrap();
        assert!(matches!(c, Command::Inject { genes } if genes.len() == 2));
        assert_eq!(
            serde_json::to_string(&Command::Pause).unwrap(),
            r#"{"command":"pause"}"#
        );
    }

    #[test]
    fn events_round_trip() {
        let e = Event::Progress {
            id: 1,
            step: 5,
            steps: 40,
            loss: 0.125,
            lr: 1e-4,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.starts_with(r#"{"event":"progress""#));
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
        assert_eq!(e.member_id(), Some(1));
    }
}
