//! Shared by the `tui_*` tests: a recorded event sequence from a real engine
//! driven by a stand-in trainer (no training), and buffer helpers.
#![allow(dead_code)]

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use esr_ea::engine::{
    self, EngineHandle, EngineSetup, Event, Failure, Fitness, Job, RunDir, StepReport,
};
use esr_ea::search::{Evaluation, Policy, Problem, Range, Search};
use esr_ea::space::SearchSpace;
use esr_ea::tui::{App, Glyphs, Look, Mode};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

/// Deterministic fitness from the genes; a few steps with a short pause
/// each, checking the cancel flag like a real trainer.
pub struct Stand {
    pub step_ms: u64,
}

impl Fitness for Stand {
    fn steps(&self) -> usize {
        4
    }

    fn evaluate(
        &self,
        job: &Job,
        report: &mut dyn FnMut(StepReport),
    ) -> Result<Evaluation, Failure> {
        for step in 1..=4 {
            if job.cancel.load(Ordering::SeqCst) {
                return Err(Failure::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(self.step_ms));
            report(StepReport {
                step,
                steps: 4,
                loss: 0.5 / step as f64,
                lr: 1e-3,
            });
        }
        let g = &job.member.genes;
        Ok(Evaluation {
            psnr: 28.0 + g.len() as f64 * 0.05 + (job.member.params % 97) as f64 * 0.001,
            ssim: 0.8,
            final_loss: Some(0.125),
            seconds: 1.5,
        })
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

pub fn temp_run(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("esr-ea-tui-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn start(search: Search, run: RunDir, step_ms: u64) -> (EngineHandle, Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let handle = engine::spawn(
        EngineSetup {
            search,
            run,
            seed: 5,
            devices: vec!["cpu".into()],
            resumed: false,
            fitness: Arc::new(Stand { step_ms }),
        },
        tx,
    );
    (handle, rx)
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
                0,
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
