//! The live dashboard (ratatui + crossterm): renders engine [`Event`]s and
//! sends engine [`Command`]s, nothing else.
//!
//! One tokio current-thread loop selects over terminal input, engine events
//! and a redraw tick. Input and engine events arrive through plain threads
//! bridged into tokio channels, so training at full CPU never blocks keys,
//! and bursts of events are applied at once and drawn on the next tick.
//!
//! Two ways to feed it:
//! * in-process ([`EventSource::Engine`] + [`CommandSink::Engine`]): the
//!   engine runs in this process (`esr-ea search`);
//! * attached (`esr-ea attach`): `events.jsonl` of a run elsewhere on the
//!   machine is replayed and followed ([`EventSource::EventLog`]), commands go
//!   to its `control.jsonl` ([`CommandSink::ControlFile`]). Any number of
//!   viewers may attach; leaving one never stops the search.

pub mod app;
pub mod format;
pub mod keys;
pub mod look;
pub mod tail;
pub mod terminal;
pub mod validate;
pub mod view;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, KeyEventKind};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

pub use crate::engine::run_view::RunState;
pub use app::{Action, App, Mode, Overlay, Pane};
pub use look::{Glyphs, Look};
pub use tail::read_event_log;

use crate::engine::{control, Command, Event, Inbox};

/// Redraws per second (also the clock's resolution).
const TICK: Duration = Duration::from_millis(125);

/// Where the dashboard's events come from.
#[derive(Debug)]
pub enum EventSource {
    /// The engine of this process (`engine::spawn`'s event receiver).
    Engine(Receiver<Event>),
    /// A run's `events.jsonl`, replayed from the start, then followed.
    EventLog(PathBuf),
}

/// Where the dashboard's commands go.
#[derive(Debug, Clone)]
pub enum CommandSink {
    /// The engine of this process (`EngineHandle::sender()`).
    Engine(Sender<Inbox>),
    /// A run's `control.jsonl` (a search in another process).
    ControlFile(PathBuf),
}

impl CommandSink {
    /// Delivers one command.
    pub fn send(&self, command: Command) -> Result<()> {
        match self {
            CommandSink::Engine(tx) => tx
                .send(Inbox::Command(command))
                .map_err(|_| anyhow::anyhow!("the engine has ended")),
            CommandSink::ControlFile(path) => control::send_command(path, &command),
        }
    }
}

/// How the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The user left without stopping anything (the search had ended, or
    /// `q` was pressed again while it was stopping).
    Left,
    /// The user asked the search to stop. In-process the dashboard waited
    /// until the engine checkpointed; attached, the command was sent.
    Stopped,
    /// Attached only: the user left; the search keeps running.
    Detached,
    /// SIGHUP, SIGTERM or SIGINT, or the terminal was lost. In-process the
    /// engine was told to stop (join it: it checkpoints); attached, nothing
    /// was sent.
    Signal,
}

/// Runs the dashboard until the user leaves or a signal arrives, then
/// restores the terminal. Needs stdout to be a terminal.
pub fn run_dashboard(source: EventSource, sink: CommandSink, app: App) -> Result<Exit> {
    Ok(run_dashboard_with_state(source, sink, app)?.0)
}

/// [`run_dashboard`], also returning the dashboard's last state (what the
/// user saw when leaving, e.g. whether the search was paused).
pub fn run_dashboard_with_state(
    source: EventSource,
    sink: CommandSink,
    app: App,
) -> Result<(Exit, App)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the dashboard's event loop")?;
    runtime.block_on(event_loop(source, sink, app))
}

/// Forwards terminal input to the loop; polls so it notices `stop` quickly.
fn spawn_input(
    tx: UnboundedSender<TermEvent>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("esr-ea-input".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match crossterm::event::poll(Duration::from_millis(50)) {
                    Ok(true) => match crossterm::event::read() {
                        Ok(event) => {
                            if tx.send(event).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        })
        .expect("spawn input thread")
}

/// Bridges the event source into a tokio channel, each event with its
/// run-clock stamp when it comes from the log (the in-process engine's
/// clock is read directly, see [`crate::engine::RunView::set_run_clock`]).
fn spawn_events(
    source: EventSource,
    tx: UnboundedSender<(Event, Option<f64>)>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("esr-ea-events".into())
        .spawn(move || match source {
            EventSource::Engine(rx) => {
                // Ends when the engine drops its sender (it has finished).
                for event in rx {
                    if tx.send((event, None)).is_err() {
                        return;
                    }
                }
            }
            EventSource::EventLog(path) => {
                let (std_tx, std_rx) = std::sync::mpsc::channel();
                let tail = tail::spawn_tail(&path, std_tx, Arc::clone(&stop));
                for event in std_rx {
                    if tx.send(event).is_err() {
                        break;
                    }
                }
                let _ = tail.join();
            }
        })
        .expect("spawn event bridge")
}

async fn event_loop(source: EventSource, sink: CommandSink, mut app: App) -> Result<(Exit, App)> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut guard = terminal::TerminalGuard::enter().context("cannot set up the terminal")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (key_tx, mut keys) = unbounded_channel();
    let input = spawn_input(key_tx, Arc::clone(&stop));
    let (event_tx, mut events) = unbounded_channel();
    // Not joined: an engine receiver only ends when the engine does.
    let _bridge = spawn_events(source, event_tx, Arc::clone(&stop));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut open = true;
    let mut draw = true;
    let in_process = matches!(sink, CommandSink::Engine(_));
    let exit = loop {
        if draw {
            if guard
                .terminal
                .draw(|frame| view::draw(frame, &app))
                .is_err()
            {
                // The terminal is gone (e.g. SSH dropped before SIGHUP arrived).
                break on_signal(&sink, in_process);
            }
            draw = false;
        }
        tokio::select! {
            input = keys.recv() => match input {
                Some(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => {
                    draw = true;
                    match app.on_key(key) {
                        None => {}
                        Some(Action::Send(command)) => deliver(&sink, command, &mut app),
                        Some(Action::Quit { stop_search: true }) => {
                            deliver(&sink, Command::Stop, &mut app);
                            if !in_process || !open {
                                break Exit::Stopped;
                            }
                            // In-process: keep showing the run until it has checkpointed.
                        }
                        Some(Action::Quit { stop_search: false }) => break Exit::Left,
                        Some(Action::Detach) => break Exit::Detached,
                    }
                }
                Some(TermEvent::Resize(_, _)) => {
                    let _ = guard.terminal.autoresize();
                    draw = true;
                }
                Some(_) => {}
                None => break on_signal(&sink, in_process),
            },
            event = events.recv(), if open => match event {
                Some(stamped) => {
                    let mut apply = |(event, t): (Event, Option<f64>)| {
                        if let Some(t) = t {
                            app.view.stamp(t);
                        }
                        app.apply(&event);
                    };
                    apply(stamped);
                    // Apply a burst at once; it is drawn on the next tick.
                    while let Ok(stamped) = events.try_recv() {
                        apply(stamped);
                    }
                    let ended = matches!(app.view.state(), RunState::Stopped | RunState::Finished);
                    if ended && app.stop_requested() {
                        break Exit::Stopped;
                    }
                }
                None => {
                    open = false;
                    let was_stopping = app.view.state() == RunState::Stopping;
                    app.view.stream_ended();
                    if was_stopping {
                        break Exit::Stopped;
                    }
                }
            },
            _ = tick.tick() => {
                app.view.tick();
                for message in terminal::take_other_panics() {
                    app.view.note("error", message);
                }
                draw = true;
            }
            _ = hangup.recv() => break on_signal(&sink, in_process),
            _ = terminate.recv() => break on_signal(&sink, in_process),
            _ = interrupt.recv() => break on_signal(&sink, in_process),
        }
    };
    stop.store(true, Ordering::SeqCst);
    drop(guard);
    // The input thread sees `stop` within its poll interval, unless the
    // terminal is gone: then crossterm may never return, so it is left behind
    // rather than joined (it ends with the process).
    let deadline = Instant::now() + Duration::from_millis(300);
    while !input.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if input.is_finished() {
        let _ = input.join();
    }
    Ok((exit, app))
}

fn deliver(sink: &CommandSink, command: Command, app: &mut App) {
    if let Err(e) = sink.send(command.clone()) {
        app.view
            .note("error", format!("could not send {command:?}: {e:#}"));
    }
}

fn on_signal(sink: &CommandSink, in_process: bool) -> Exit {
    if in_process {
        // The engine lives here: let it checkpoint (the caller joins it).
        let _ = sink.send(Command::Stop);
    }
    Exit::Signal
}
