//! Evaluations as Slurm batch jobs: one `sbatch --parsable` per member,
//! running `esr-ea evaluate <run>/jobs/<id>.json` on a compute node.
//!
//! The coordinator (this process) and the jobs share the run directory: a
//! monitor thread tails each job's progress file (the dashboard's live loss
//! curves), picks up its result file, and asks `squeue` (and, once a job has
//! ended without a result, `scontrol show job`) for its state, node and
//! Slurm's reason. `sacct` is never used: many clusters, and the one-node
//! test setup, run without accounting.
//!
//! * kill → `scancel`; the member is killed once Slurm reports the job gone.
//! * stop → jobs in flight are left queued or running ([`Outcome::Detached`]);
//!   their ids stay in `state.json` and `--resume` adopts them, collecting
//!   results that arrived meanwhile instead of submitting again.
//! * a job that fails, times out, runs out of memory or is preempted → a
//!   failed member with Slurm's state and reason; on `NODE_FAIL` the member is
//!   submitted once more.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::jobfile::{self, JobKind, JobPaths, JobSpec, ProgressTail};
use super::{Executor, Submitted};
use crate::config::SlurmSettings;
use crate::engine::{Event, Inbox, Job, Outcome};

/// How often progress and result files are looked at.
const TAIL_INTERVAL: Duration = Duration::from_millis(200);

/// Slurm states after which a job never runs again.
const TERMINAL: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
    "REVOKED",
];

/// What Slurm says about one job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobStatus {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, …
    pub state: String,
    /// The node(s) it runs or ran on; empty while pending.
    pub node: String,
    /// Slurm's reason (`Priority`, `Resources`, `NonZeroExitCode`, …).
    pub reason: String,
    /// `ExitCode` (`1:0`), when `scontrol` was asked.
    pub exit_code: Option<String>,
}

impl JobStatus {
    /// True when the job has ended for good.
    pub fn is_terminal(&self) -> bool {
        TERMINAL.contains(&self.state.as_str())
    }
}

/// Parses `squeue -h -o '%i|%T|%N|%r'` output: job id → status.
pub fn parse_squeue(text: &str) -> BTreeMap<String, JobStatus> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(4, '|');
            let id = parts.next()?.trim();
            let state = parts.next()?.trim();
            if id.is_empty() || state.is_empty() {
                return None;
            }
            Some((
                id.to_string(),
                JobStatus {
                    state: state.to_string(),
                    node: clean(parts.next().unwrap_or("")),
                    reason: clean(parts.next().unwrap_or("")),
                    exit_code: None,
                },
            ))
        })
        .collect()
}

/// Parses `scontrol show job -o ID` (one line of `Key=Value` pairs).
pub fn parse_scontrol(text: &str) -> Option<JobStatus> {
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .map(clean)
    };
    Some(JobStatus {
        state: field("JobState")?,
        node: field("NodeList").unwrap_or_default(),
        reason: field("Reason").unwrap_or_default(),
        exit_code: field("ExitCode"),
    })
}

fn clean(s: &str) -> String {
    let s = s.trim();
    if matches!(s, "(null)" | "None" | "(None)") {
        String::new()
    } else {
        s.to_string()
    }
}

/// One line on a failed job: Slurm's state, reason and exit code, and the
/// last line of its output (usually the error).
pub fn failure_reason(job_id: &str, status: &JobStatus, output: &Path) -> String {
    let mut reason = format!("Slurm job {job_id} {}", status.state);
    let mut details = Vec::new();
    if !status.reason.is_empty() {
        details.push(status.reason.clone());
    }
    if let Some(code) = status.exit_code.as_deref().filter(|c| *c != "0:0") {
        details.push(format!("exit code {code}"));
    }
    if !details.is_empty() {
        reason.push_str(&format!(" ({})", details.join(", ")));
    }
    let last = std::fs::read_to_string(output).ok().and_then(|t| {
        t.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_string)
    });
    match last {
        Some(line) => reason.push_str(&format!(": {}", line.trim())),
        None => reason.push_str(&format!(": no output in {}", output.display())),
    }
    reason
}

/// Runs a Slurm command; its stdout, or a one-line error naming it.
fn slurm(program: &str, args: &[String]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{program} not found: the Slurm executor needs Slurm's commands (sbatch, squeue, scontrol, scancel) on this machine's PATH")
        } else {
            format!("cannot run {program}: {e}")
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim();
        return Err(format!("{program} failed ({}): {first}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn squeue(job_ids: &[String]) -> Result<BTreeMap<String, JobStatus>, String> {
    if job_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let args = vec![
        "-h".to_string(),
        "--states=all".into(),
        "-o".into(),
        "%i|%T|%N|%r".into(),
        "-j".into(),
        job_ids.join(","),
    ];
    match slurm("squeue", &args) {
        Ok(text) => Ok(parse_squeue(&text)),
        // squeue fails on a list of only unknown (purged) ids; ask one by one.
        Err(_) if job_ids.len() > 1 => {
            let mut all = BTreeMap::new();
            for id in job_ids {
                all.extend(squeue(std::slice::from_ref(id)).unwrap_or_default());
            }
            Ok(all)
        }
        Err(e) if e.contains("Invalid job id") => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

fn scontrol(job_id: &str) -> Option<JobStatus> {
    let args = ["show", "job", "-o", job_id].map(String::from);
    slurm("scontrol", &args)
        .ok()
        .and_then(|t| parse_scontrol(&t))
}

/// Quotes a word for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A job the monitor follows.
struct Tracked {
    job: Job,
    job_id: String,
    paths: JobPaths,
    tail: ProgressTail,
    status: JobStatus,
    cancel_sent: bool,
    resubmitted: bool,
    submitted: Instant,
}

/// What the monitor thread shares with the executor.
struct Shared {
    tracked: BTreeMap<u64, Tracked>,
}

/// Writes a member's job files and hands them to `sbatch`.
#[derive(Debug)]
pub struct Submitter {
    settings: SlurmSettings,
    run_dir: PathBuf,
    run_name: String,
    program: PathBuf,
    kind: JobKind,
}

/// Submits evaluations to Slurm and follows them.
pub struct SlurmExecutor {
    submitter: Arc<Submitter>,
    shared: Arc<Mutex<Shared>>,
    in_flight: HashSet<u64>,
    inbox: Option<Sender<Inbox>>,
    monitor: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl SlurmExecutor {
    /// An executor for the search run in `run_dir` (made absolute: the nodes
    /// see the same path on the shared filesystem).
    pub fn new(settings: SlurmSettings, run_dir: &Path) -> Result<SlurmExecutor, String> {
        SlurmExecutor::for_kind(settings, run_dir, JobKind::Member)
    }

    /// An executor whose jobs are of `kind`: members of the search in
    /// `run_dir`, or trainings of the study in it.
    pub fn for_kind(
        settings: SlurmSettings,
        run_dir: &Path,
        kind: JobKind,
    ) -> Result<SlurmExecutor, String> {
        let run_dir = std::path::absolute(run_dir)
            .map_err(|e| format!("cannot resolve {}: {e}", run_dir.display()))?;
        let program = match &settings.program {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find the esr-ea binary to run in the jobs: {e}"))?,
        };
        std::fs::create_dir_all(run_dir.join(jobfile::JOBS_DIR))
            .map_err(|e| format!("cannot create {}/jobs: {e}", run_dir.display()))?;
        let run_name = run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        Ok(SlurmExecutor {
            submitter: Arc::new(Submitter {
                settings,
                run_dir,
                run_name,
                program,
                kind,
            }),
            shared: Arc::new(Mutex::new(Shared {
                tracked: BTreeMap::new(),
            })),
            in_flight: HashSet::new(),
            inbox: None,
            monitor: None,
            done: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The submitter (settings and paths) this executor uses.
    pub fn submitter(&self) -> &Submitter {
        &self.submitter
    }

    /// Whether job `job_id`, from a previous coordinator, can be taken over
    /// for `job`: its spec names the same genes, and Slurm still has it
    /// queued or running, or its result is there.
    fn adoptable(&self, job: &Job, job_id: &str, paths: &JobPaths) -> bool {
        let same_member = jobfile::read_spec(&paths.spec)
            .map(|spec| {
                spec.member.genes == job.member.genes
                    && spec.seed == job.seed
                    && spec.leg == absolute_leg(&job.leg)
            })
            .unwrap_or(false);
        if !same_member {
            return false;
        }
        if paths.result.is_file() {
            return true;
        }
        let status = squeue(&[job_id.to_string()])
            .ok()
            .and_then(|mut m| m.remove(job_id))
            .or_else(|| scontrol(job_id));
        status.is_some()
    }
}

impl Submitter {
    /// The `sbatch` arguments for one member (without the script).
    pub fn sbatch_args(&self, id: u64, paths: &JobPaths) -> Vec<String> {
        let s = &self.settings;
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=esr-ea-{}-{id}", self.run_name),
            format!("--output={}", paths.output.display()),
            format!("--chdir={}", self.run_dir.display()),
        ];
        let mut opt = |flag: &str, value: &Option<String>| {
            if let Some(v) = value {
                args.push(format!("--{flag}={v}"));
            }
        };
        opt("partition", &s.partition);
        opt("gres", &s.gres);
        opt("cpus-per-task", &s.cpus_per_task.map(|c| c.to_string()));
        opt("mem", &s.mem);
        opt("time", &s.time);
        opt("account", &s.account);
        opt("qos", &s.qos);
        args.extend(s.extra_args.iter().cloned());
        args
    }

    fn sbatch(&self, job: &Job, paths: &JobPaths) -> Result<String, String> {
        let spec = JobSpec {
            kind: self.kind,
            run_dir: self.run_dir.clone(),
            config: self.run_dir.join(crate::engine::rundir::files::CONFIG),
            member: job.member.clone(),
            seed: job.seed,
            device: self.settings.job_device(),
            weights: std::path::absolute(&job.weights).unwrap_or_else(|_| job.weights.clone()),
            progress: paths.progress.clone(),
            result: paths.result.clone(),
            checks: job.checks.clone(),
            leg: absolute_leg(&job.leg),
        };
        for stale in [&paths.result, &paths.progress] {
            let _ = std::fs::remove_file(stale);
        }
        jobfile::write_spec(&paths.spec, &spec).map_err(|e| format!("{e:#}"))?;
        let script = format!(
            "#!/bin/sh\n# esr-ea: {what} #{id} of {run}, written by the Slurm executor.\n# The job trains on as many threads as Slurm gave it CPUs.\nexport RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\nexec {program} evaluate {spec}\n",
            id = job.member.id,
            what = match self.kind {
                JobKind::Member => "member",
                JobKind::StudyTask => "study training",
            },
            run = self.run_name,
            program = shell_quote(&self.program.display().to_string()),
            spec = shell_quote(&paths.spec.display().to_string()),
        );
        crate::fsutil::atomic_write(&paths.script, script.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", paths.script.display()))?;
        let mut args = self.sbatch_args(job.member.id, paths);
        args.push(paths.script.display().to_string());
        let out = slurm("sbatch", &args)?;
        let id = out
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
            return Err(format!(
                "sbatch gave no job id (it printed '{}')",
                out.trim()
            ));
        }
        Ok(id)
    }
}

impl Executor for SlurmExecutor {
    fn describe(&self) -> Vec<String> {
        let settings = &self.submitter.settings;
        let mut what = format!("slurm:{}", settings.job_device());
        if let Some(p) = &settings.partition {
            what.push_str(&format!("@{p}"));
        }
        vec![what]
    }

    fn start(&mut self, inbox: Sender<Inbox>) {
        self.inbox = Some(inbox.clone());
        let shared = Arc::clone(&self.shared);
        let done = Arc::clone(&self.done);
        let poll = Duration::from_secs_f64(self.submitter.settings.poll_seconds.max(0.05));
        let submitter = Arc::clone(&self.submitter);
        self.monitor = Some(
            std::thread::Builder::new()
                .name("esr-ea-slurm".into())
                .spawn(move || monitor(shared, inbox, done, poll, submitter))
                .expect("spawn slurm monitor"),
        );
    }

    fn free_slots(&self) -> usize {
        self.submitter
            .settings
            .max_in_flight
            .saturating_sub(self.in_flight.len())
    }

    fn submit(&mut self, job: Job) -> Result<Submitted, String> {
        let id = job.member.id;
        let paths = JobPaths::new(&self.submitter.run_dir, id);
        let adopted = job
            .adopt
            .clone()
            .filter(|job_id| self.adoptable(&job, job_id, &paths));
        let job_id = match &adopted {
            Some(job_id) => job_id.clone(),
            None => self.submitter.sbatch(&job, &paths)?,
        };
        if let Some(inbox) = &self.inbox {
            let message = match (&adopted, &job.adopt) {
                (Some(j), _) => format!("#{id}: adopted Slurm job {j} from before the restart"),
                (None, Some(old)) => format!(
                    "#{id}: Slurm job {old} is gone without a result; submitted again as job {job_id}"
                ),
                (None, None) => format!("#{id}: submitted as Slurm job {job_id}"),
            };
            let _ = inbox.send(Inbox::Emit(Event::Log {
                level: "info".into(),
                message,
            }));
        }
        let tracked = Tracked {
            tail: ProgressTail::new(paths.progress.clone()),
            job,
            job_id: job_id.clone(),
            paths,
            status: JobStatus::default(),
            cancel_sent: false,
            resubmitted: false,
            submitted: Instant::now(),
        };
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tracked
            .insert(id, tracked);
        self.in_flight.insert(id);
        Ok(Submitted {
            device: format!("slurm job {job_id}"),
            handle: Some(job_id),
        })
    }

    fn release(&mut self, id: u64) {
        self.in_flight.remove(&id);
    }

    fn stop(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let detached: Vec<(u64, String)> = std::mem::take(&mut shared.tracked)
            .into_iter()
            .map(|(id, t)| (id, t.job_id))
            .collect();
        drop(shared);
        let Some(inbox) = &self.inbox else { return };
        if !detached.is_empty() {
            let ids: Vec<String> = detached.iter().map(|(_, j)| j.clone()).collect();
            let _ = inbox.send(Inbox::Emit(Event::Log {
                level: "info".into(),
                message: format!(
                    "left Slurm job(s) {} queued or running; `esr-ea search --resume` adopts them",
                    ids.join(", ")
                ),
            }));
        }
        for (id, _) in detached {
            let _ = inbox.send(Inbox::Done {
                id,
                outcome: Outcome::Detached,
            });
        }
    }

    fn shutdown(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
    }
}

fn monitor(
    shared: Arc<Mutex<Shared>>,
    inbox: Sender<Inbox>,
    done: Arc<AtomicBool>,
    poll: Duration,
    submitter: Arc<Submitter>,
) {
    let mut last_poll: Option<Instant> = None;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(TAIL_INTERVAL);
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let mut finished: Vec<(u64, Outcome)> = Vec::new();
        for (id, t) in shared.tracked.iter_mut() {
            if t.job.cancel.load(Ordering::SeqCst) && !t.cancel_sent {
                t.cancel_sent = true;
                if let Err(e) = slurm("scancel", std::slice::from_ref(&t.job_id)) {
                    let _ = inbox.send(Inbox::Warn(format!("#{id}: {e}")));
                }
            }
            for line in t.tail.poll() {
                let _ = inbox.send(Inbox::Step(*id, line.into()));
            }
            match jobfile::read_result(&t.paths.result) {
                Ok(Some(outcome)) => finished.push((*id, outcome)),
                Ok(None) => {}
                Err(e) => finished.push((*id, Outcome::failed(format!("{e:#}")))),
            }
        }
        let due = last_poll.is_none_or(|t| t.elapsed() >= poll);
        if due && !shared.tracked.is_empty() {
            last_poll = Some(Instant::now());
            let ids: Vec<String> = shared.tracked.values().map(|t| t.job_id.clone()).collect();
            match squeue(&ids) {
                Err(e) => {
                    let _ =
                        inbox.send(Inbox::Warn(format!("cannot ask Slurm about the jobs: {e}")));
                }
                Ok(statuses) => {
                    for (id, t) in shared.tracked.iter_mut() {
                        if finished.iter().any(|(f, _)| f == id) {
                            continue;
                        }
                        let listed = statuses.get(&t.job_id).cloned();
                        let status = match &listed {
                            Some(s) if !s.is_terminal() => s.clone(),
                            // Ended (or already purged): scontrol has the reason and exit code.
                            _ => scontrol(&t.job_id).or(listed).unwrap_or_else(|| JobStatus {
                                state: "GONE".into(),
                                reason: "Slurm no longer knows the job".into(),
                                ..JobStatus::default()
                            }),
                        };
                        if status.state != t.status.state || status.node != t.status.node {
                            let _ = inbox.send(Inbox::Emit(Event::JobState {
                                id: *id,
                                job: t.job_id.clone(),
                                state: status.state.clone(),
                                node: status.node.clone(),
                                waited: t.submitted.elapsed().as_secs_f64(),
                            }));
                        }
                        t.status = status.clone();
                        if !(status.is_terminal() || status.state == "GONE") {
                            continue;
                        }
                        // The result may have landed between the file check and squeue.
                        for line in t.tail.poll() {
                            let _ = inbox.send(Inbox::Step(*id, line.into()));
                        }
                        if let Ok(Some(outcome)) = jobfile::read_result(&t.paths.result) {
                            finished.push((*id, outcome));
                            continue;
                        }
                        if t.cancel_sent {
                            finished.push((*id, Outcome::Cancelled));
                        } else if status.state == "NODE_FAIL" && !t.resubmitted {
                            t.resubmitted = true;
                            match submitter.sbatch(&t.job, &t.paths) {
                                Ok(new_id) => {
                                    let _ = inbox.send(Inbox::Resubmitted {
                                        id: *id,
                                        handle: new_id.clone(),
                                    });
                                    let _ = inbox.send(Inbox::Emit(Event::Log {
                                        level: "warn".into(),
                                        message: format!(
                                            "#{id}: Slurm job {} failed with its node; submitted again as job {new_id}",
                                            t.job_id
                                        ),
                                    }));
                                    t.job_id = new_id;
                                    t.status = JobStatus::default();
                                    t.tail = ProgressTail::new(t.paths.progress.clone());
                                    t.submitted = Instant::now();
                                }
                                Err(e) => finished.push((*id, Outcome::failed(e))),
                            }
                        } else {
                            let reason = failure_reason(&t.job_id, &status, &t.paths.output);
                            finished.push((*id, Outcome::Failed { reason }));
                        }
                    }
                }
            }
        }
        for (id, outcome) in finished {
            shared.tracked.remove(&id);
            let _ = inbox.send(Inbox::Done { id, outcome });
        }
    }
}

/// A job's leg with absolute checkpoint paths: the job runs on another
/// node, in another working directory.
fn absolute_leg(leg: &crate::engine::Leg) -> crate::engine::Leg {
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut leg = leg.clone();
    if let Some(from) = &mut leg.from {
        from.checkpoint = absolute(&from.checkpoint);
    }
    if let Some(until) = &mut leg.until {
        until.checkpoint = absolute(&until.checkpoint);
    }
    leg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_parse() {
        let m = parse_squeue("12|PENDING||Priority\n13|RUNNING|node7|None\n\n");
        assert_eq!(m["12"].state, "PENDING");
        assert_eq!(m["12"].reason, "Priority");
        assert_eq!(m["12"].node, "");
        assert_eq!(m["13"].node, "node7");
        assert_eq!(m["13"].reason, "");
        assert!(!m["13"].is_terminal());
    }

    #[test]
    fn scontrol_gives_state_reason_and_exit_code() {
        let s = parse_scontrol(
            "JobId=7 JobName=x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=1:0 NodeList=vm",
        )
        .unwrap();
        assert_eq!(s.state, "FAILED");
        assert_eq!(s.reason, "NonZeroExitCode");
        assert_eq!(s.exit_code.as_deref(), Some("1:0"));
        assert_eq!(s.node, "vm");
        assert!(s.is_terminal());
        assert_eq!(
            parse_scontrol("slurm_load_jobs error: Invalid job id specified"),
            None
        );
    }

    #[test]
    fn a_failure_names_state_reason_exit_code_and_last_output_line() {
        let dir = std::env::temp_dir().join(format!("esr-ea-slurm-reason-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("1.out");
        std::fs::write(&out, "loading\nerror: out of memory\n\n").unwrap();
        let status = JobStatus {
            state: "OUT_OF_MEMORY".into(),
            node: "vm".into(),
            reason: "OutOfMemory".into(),
            exit_code: Some("0:125".into()),
        };
        assert_eq!(
            failure_reason("9", &status, &out),
            "Slurm job 9 OUT_OF_MEMORY (OutOfMemory, exit code 0:125): error: out of memory"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sbatch_arguments_follow_the_settings() {
        let dir = std::env::temp_dir().join(format!("esr-ea-slurm-args-{}", std::process::id()));
        let settings = SlurmSettings {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            cpus_per_task: Some(4),
            time: Some("00:10:00".into()),
            extra_args: vec!["--exclusive".into()],
            ..SlurmSettings::default()
        };
        let ex = SlurmExecutor::new(settings, &dir).unwrap();
        let args = ex.submitter().sbatch_args(3, &JobPaths::new(&dir, 3));
        for want in [
            "--parsable",
            "--partition=gpu",
            "--gres=gpu:1",
            "--cpus-per-task=4",
            "--time=00:10:00",
            "--exclusive",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
        assert!(args
            .iter()
            .any(|a| a.starts_with("--output=") && a.ends_with("jobs/3.out")));
        assert_eq!(ex.describe(), vec!["slurm:cuda:0@gpu".to_string()]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
