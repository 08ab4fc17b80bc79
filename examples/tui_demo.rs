//! The live dashboard on a real engine whose "training" is a stand-in that
//! sleeps (or burns CPU) and reports a made-up loss curve: try the TUI, the
//! attach path and the keys without any data or training.
//!
//! ```text
//! cargo run --example tui_demo                       # dashboard, engine in-process
//! cargo run --example tui_demo -- --headless --run-dir /tmp/demo &   # search without a UI
//! cargo run -- attach /tmp/demo                     # ...and watch it from elsewhere
//! cargo run --example tui_demo -- --snapshot 80x24  # print one frame (TestBackend)
//! ```
//! Options: `--config quick|esr_ea` (default esr_ea: 8 individuals x 20
//! generations), `--step-ms N` (default 150; 20 steps per individual),
//! `--burn` (busy-loop instead of sleeping), `--workers N` (default 1).

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use esr_ea::config::Config;
use esr_ea::engine::{
    self, Command, EngineSetup, Event, Fitness, Inbox, Job, Outcome, RunDir, StepReport,
    TrainingRules,
};
use esr_ea::search::{Evaluation, Problem, Search};
use esr_ea::tui::{self, App, CommandSink, EventSource, Look, Mode};

const STEPS: usize = 20;

/// Pretends to train: a decaying loss with a little member-specific wobble.
struct Demo {
    step_ms: u64,
    burn: bool,
}

impl Fitness for Demo {
    fn evaluate(&self, job: &Job, report: &mut dyn FnMut(StepReport)) -> Outcome {
        let start = Instant::now();
        let wobble = (job.seed % 1000) as f64 / 1000.0;
        for step in 1..=STEPS {
            if job.cancel.load(Ordering::SeqCst) {
                return Outcome::Cancelled;
            }
            let until = Instant::now() + Duration::from_millis(self.step_ms);
            if self.burn {
                let mut x = 1u64;
                while Instant::now() < until {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                std::hint::black_box(x);
            } else {
                std::thread::sleep(Duration::from_millis(self.step_ms));
            }
            let t = step as f64;
            report(StepReport {
                step,
                steps: STEPS,
                loss: 0.06
                    + 0.35 * (-t / (4.0 + 4.0 * wobble)).exp()
                    + 0.01 * (t * (1.0 + wobble)).sin().abs(),
                lr: if step > STEPS * 3 / 4 { 5e-4 } else { 1e-3 },
            });
        }
        let _ = std::fs::write(&job.weights, b"demo");
        let g = &job.member.genes;
        Outcome::Evaluated {
            evaluation: Evaluation {
                psnr: 30.0 + g.len() as f64 * 0.04 + wobble * 0.3,
                ssim: 0.85 + wobble * 0.02,
                final_loss: Some(0.07),
                seconds: start.elapsed().as_secs_f64(),
                latency_ms: None,
                checkpoint_losses: Vec::new(),
            },
        }
    }
}

struct Args {
    config: String,
    run_dir: Option<std::path::PathBuf>,
    headless: bool,
    step_ms: u64,
    burn: bool,
    workers: usize,
    snapshot: Option<(u16, u16)>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        config: "esr_ea".into(),
        run_dir: None,
        headless: false,
        step_ms: 150,
        burn: false,
        workers: 1,
        snapshot: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--config" => args.config = value("--config")?,
            "--run-dir" => args.run_dir = Some(value("--run-dir")?.into()),
            "--headless" => args.headless = true,
            "--burn" => args.burn = true,
            "--step-ms" => args.step_ms = value("--step-ms")?.parse().context("--step-ms")?,
            "--workers" => args.workers = value("--workers")?.parse().context("--workers")?,
            "--snapshot" => {
                let v = value("--snapshot")?;
                let (w, h) = v.split_once('x').context("--snapshot WxH, e.g. 80x24")?;
                args.snapshot = Some((w.parse()?, h.parse()?));
            }
            other => bail!("unknown option {other} (see the example's doc comment)"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let config = Config::embedded(&args.config)?.config;
    let problem = Problem::new(
        config.search_space.clone(),
        config.policy.clone(),
        config.range.clone(),
    )?;
    if let Some((w, h)) = args.snapshot {
        return snapshot(&config, problem, w, h);
    }
    let dir = args.run_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("esr-ea-demo-{}", std::process::id()))
    });
    let run = RunDir::create(&dir)?;
    run.write_config(&config)?;
    let search = Search::new(problem.clone(), config.seed)?;
    let (tx, rx) = mpsc::channel();
    let handle = engine::spawn(
        EngineSetup {
            search,
            run,
            seed: config.seed,
            devices: vec!["cpu".into(); args.workers.max(1)],
            resumed: false,
            notes: Vec::new(),
            rules: TrainingRules::whole(STEPS),
        },
        Arc::new(Demo {
            step_ms: args.step_ms,
            burn: args.burn,
        }),
        tx,
    );
    if args.headless {
        stop_on_signals(handle.sender());
        eprintln!(
            "demo search in {} (attach with: esr-ea attach {})",
            dir.display(),
            dir.display()
        );
        for event in rx {
            if !matches!(event, Event::Progress { .. }) {
                println!("{}", serde_json::to_string(&event)?);
            }
        }
        handle.join()?;
        return Ok(());
    }
    let app = App::new(problem, Mode::InProcess).with_look(Look::from_env());
    let exit = tui::run_dashboard(
        EventSource::Engine(rx),
        CommandSink::Engine(handle.sender()),
        app,
    )?;
    let search = handle.join()?;
    // After a hang-up there is no terminal: write, but never panic on it.
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "dashboard: {exit:?}; search finished: {}; run directory {}",
        search.state.finished,
        dir.display()
    );
    if !search.state.finished {
        let _ = writeln!(
            out,
            "(a real search would continue with: esr-ea search --resume {})",
            dir.display()
        );
    }
    Ok(())
}

fn stop_on_signals(inbox: mpsc::Sender<Inbox>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            let _ = inbox.send(Inbox::Command(Command::Stop));
        }
    });
}

/// Runs a fast demo search to its second generation's middle and prints one frame.
fn snapshot(config: &Config, problem: Problem, w: u16, h: u16) -> Result<()> {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    let dir = std::env::temp_dir().join(format!("esr-ea-demo-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (tx, rx) = mpsc::channel();
    let handle = engine::spawn(
        EngineSetup {
            search: Search::new(problem.clone(), config.seed)?,
            run: RunDir::create(&dir)?,
            seed: config.seed,
            devices: vec!["cpu".into()],
            resumed: false,
            notes: Vec::new(),
            rules: TrainingRules::whole(STEPS),
        },
        Arc::new(Demo {
            step_ms: 0,
            burn: false,
        }),
        tx,
    );
    let mut app = App::new(problem, Mode::InProcess).with_look(Look::from_env());
    let mut started_in_gen2 = 0;
    let mut progress = 0;
    for event in rx.iter() {
        app.apply(&event);
        match &event {
            Event::Started { .. } if app.view.generation == 1 => started_in_gen2 += 1,
            Event::Progress { .. } if started_in_gen2 == 3 => {
                progress += 1;
                if progress == STEPS / 2 {
                    break;
                }
            }
            _ => {}
        }
    }
    handle.send(Command::Stop);
    handle.join()?;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(i) = app
        .view
        .population
        .iter()
        .position(|m| app.view.live.get(&m.id).is_some_and(|l| l.training))
    {
        app.pop_selected = i;
    }
    let mut terminal = Terminal::new(TestBackend::new(w, h))?;
    terminal.draw(|f| tui::view::draw(f, &app))?;
    let buf = terminal.backend().buffer();
    for row in buf.content.chunks(w as usize) {
        println!("{}", row.iter().map(|c| c.symbol()).collect::<String>());
    }
    Ok(())
}
