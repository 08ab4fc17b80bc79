//! Where evaluations run. The engine hands each [`Job`] to an [`Executor`]
//! and hears back through its inbox ([`Inbox::Step`], [`Inbox::Done`],
//! [`Inbox::Emit`]); it never knows whether a training runs on one of its
//! own threads ([`local`]) or as a batch job on a cluster ([`slurm`]).
//!
//! Killing a member is the job's cancel flag in both cases: local workers
//! see it at the next training step, the Slurm executor answers it with
//! `scancel`.

pub mod jobfile;
pub mod local;
pub mod slurm;

use std::sync::mpsc::Sender;

use super::{Inbox, Job};

/// Runs evaluations and reports their progress and results to the engine.
pub trait Executor: Send {
    /// Where trainings run, for the `RunStarted` event and the dashboard
    /// header (`cpu`, `cuda:0`, `slurm:gpu`, …).
    fn describe(&self) -> Vec<String>;

    /// Starts whatever runs in the background (threads, a poller); messages
    /// go to `inbox`. Called once, before the first [`Executor::submit`].
    fn start(&mut self, inbox: Sender<Inbox>);

    /// How many more jobs it takes now.
    fn free_slots(&self) -> usize;

    /// Hands a job over. [`Submitted::handle`] names an outside job (a Slurm
    /// job id) that the engine keeps in `state.json` until the member's
    /// result is recorded, so a restarted coordinator can adopt it (see
    /// [`Job::adopt`]). An error is a one-line reason: the member fails.
    fn submit(&mut self, job: Job) -> Result<Submitted, String>;

    /// The engine recorded the end of member `id` (after its
    /// [`Inbox::Done`]); its slot is free again.
    fn release(&mut self, id: u64);

    /// The search is stopping: every job in flight must end with an
    /// [`Inbox::Done`] soon. Local trainings are cancelled (and redone on
    /// resume); Slurm jobs are left running and reported as
    /// [`super::Outcome::Detached`], to be adopted on resume.
    fn stop(&mut self);

    /// Ends the background work; no job is in flight any more.
    fn shutdown(&mut self);
}

/// What [`Executor::submit`] tells the engine about a job it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// Where it runs, for the `Started` event (`cpu`, `slurm job 42`).
    pub device: String,
    /// The outside job's id, kept in `state.json` while the job runs.
    pub handle: Option<String>,
}
