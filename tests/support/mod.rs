//! Shared by the tests: temporary folders, running the binary (`cli`), a
//! tiny photo dataset and search config (`tiny`), comparing runs' states
//! (`state`), a real engine driven by a stand-in trainer (no training) and
//! waiting for its events, a recorded event sequence, and the dashboard's
//! buffer helpers. Each test binary uses a part of it.
#![allow(dead_code)]

pub mod cli;
pub mod state;
pub mod tiny;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use esr_ea::engine::{
    self, EngineHandle, EngineSetup, Event, Fitness, Job, Outcome, RunDir, StepReport,
    TrainingRules,
};
use esr_ea::search::{Evaluation, Policy, Problem, Range, Search};
use esr_ea::space::SearchSpace;
use esr_ea::tui::{App, Glyphs, Look, Mode};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

/// Deterministic fitness from the genes; a few steps with a short pause
/// each, checking the cancel flag like a real trainer, and real (untrained)
/// weights of the member's network where the real one saves them.
pub struct Stand {
    /// Pause per step.
    pub step_ms: u64,
    /// Loss of the first step (step `n` reports `first_loss / n`).
    pub first_loss: f64,
    /// The training time each evaluation reports.
    pub seconds: f64,
    /// Steps a member trains (4 unless a test wants a paper-length run).
    pub steps: usize,
}

impl Stand {
    /// As the engine tests train: quick, reported as 10 ms.
    pub fn quick(step_ms: u64) -> Stand {
        Stand {
            step_ms,
            first_loss: 1.0,
            seconds: 0.01,
            steps: 4,
        }
    }

    /// As the dashboard tests record: 1.5 s reported per member, so clocks
    /// and ETAs read as seconds and minutes.
    pub fn timed(step_ms: u64) -> Stand {
        Stand {
            step_ms,
            first_loss: 0.5,
            seconds: 1.5,
            steps: 4,
        }
    }
}

impl Fitness for Stand {
    fn evaluate(&self, job: &Job, report: &mut dyn FnMut(StepReport)) -> Outcome {
        for step in 1..=self.steps {
            if job.cancel.load(Ordering::SeqCst) {
                return Outcome::Cancelled;
            }
            if self.step_ms > 0 {
                std::thread::sleep(Duration::from_millis(self.step_ms));
            }
            report(StepReport {
                step,
                steps: self.steps,
                loss: self.first_loss / step as f64,
                lr: 1e-3,
            });
        }
        // Real weights of the member's network: export verifies them.
        let model = esr_ea::model::Esrn::seeded(&job.arch, job.seed, &candle_core::Device::Cpu)
            .unwrap()
            .0;
        esr_ea::model::save_model(&model, &job.weights).unwrap();
        let g = &job.member.genes;
        Outcome::Evaluated {
            evaluation: Evaluation {
                psnr: 28.0 + g.len() as f64 * 0.05 + (job.member.params % 97) as f64 * 0.001,
                ssim: 0.8,
                final_loss: Some(self.first_loss / 4.0),
                seconds: self.seconds,
                latency_ms: None,
                checkpoint_losses: Vec::new(),
            },
        }
    }
}

pub fn problem(generations: usize) -> Problem {
    Problem::new(
        SearchSpace::default(),
        Policy {
            num_generation: generations,
            ..Policy::default()
        },
        Range {
            node_num: 10,
            min_active: 4,
            max_params: 160_000,
            min_params: 100_000,
        },
    )
    .unwrap()
}

/// A fresh path for a run directory of this test binary (not created).
pub fn temp_run(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("esr-ea-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A fresh, empty folder of this test binary.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = temp_run(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the engine on one `cpu` worker with `fitness`.
pub fn start(
    search: Search,
    run: RunDir,
    resumed: bool,
    fitness: Stand,
) -> (EngineHandle, Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let handle = engine::spawn(
        EngineSetup {
            search,
            run,
            seed: 5,
            devices: vec!["cpu".into()],
            resumed,
            rules: TrainingRules::whole(fitness.steps),
            notes: Vec::new(),
        },
        Arc::new(fitness),
        tx,
    );
    (handle, rx)
}

/// The first event that `pred` accepts (the others are dropped); panics
/// after 20 s without one.
pub fn wait_for(rx: &Receiver<Event>, pred: impl Fn(&Event) -> bool) -> Event {
    loop {
        let e = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("event in time");
        if pred(&e) {
            return e;
        }
    }
}

/// Every event of a whole 2-generation search (8 individuals each),
/// recorded once per test binary.
pub fn recorded() -> Vec<Event> {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS
        .get_or_init(|| {
            let dir = temp_run("recorded");
            let (handle, rx) = start(
                Search::new(problem(2), 1).unwrap(),
                RunDir::create(&dir).unwrap(),
                false,
                Stand::timed(0),
            );
            handle.join().unwrap();
            let events = rx.try_iter().collect();
            std::fs::remove_dir_all(&dir).unwrap();
            events
        })
        .clone()
}

/// The events up to (and including) the second `Progress` of the third
/// member trained in generation 1: some done, one training, some queued.
pub fn mid_run(events: &[Event]) -> Vec<Event> {
    let gen1 = events
        .iter()
        .position(|e| matches!(e, Event::Generation { generation: 1, .. }))
        .expect("generation 1");
    let mut started = 0;
    let mut progress = 0;
    for (i, e) in events.iter().enumerate().skip(gen1) {
        match e {
            Event::Started { .. } => started += 1,
            Event::Progress { .. } if started == 3 => {
                progress += 1;
                if progress == 2 {
                    return events[..=i].to_vec();
                }
            }
            _ => {}
        }
    }
    panic!("no third training in generation 1");
}

pub fn plain() -> Look {
    Look {
        colors: true,
        glyphs: Glyphs::Unicode,
    }
}

pub fn app_from(events: &[Event], mode: Mode) -> App {
    let mut app = App::new(problem(2), mode).with_look(plain());
    for e in events {
        app.apply(e);
    }
    app
}

/// Selects the member being trained, if any.
pub fn select_training(app: &mut App) -> u64 {
    let index = app
        .view
        .population
        .iter()
        .position(|m| app.view.live.get(&m.id).is_some_and(|l| l.training))
        .expect("a member in training");
    app.pop_selected = index;
    app.view.population[index].id
}

pub fn render(app: &App, w: u16, h: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| esr_ea::tui::view::draw(f, app)).unwrap();
    terminal.backend().buffer().clone()
}

/// The buffer as lines of text.
pub fn text(buf: &Buffer) -> String {
    let w = buf.area.width as usize;
    let symbols: Vec<&str> = buf.content.iter().map(|c| c.symbol()).collect();
    symbols
        .chunks(w)
        .map(|row| row.concat())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

pub fn type_text(app: &mut App, s: &str) {
    for c in s.chars() {
        assert_eq!(app.on_key(ch(c)), None, "typing {c:?}");
    }
}
