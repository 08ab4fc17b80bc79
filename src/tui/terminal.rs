//! Terminal setup and teardown. The terminal is restored on every way out:
//! normal return, error (the guard's `Drop`), and panic of the dashboard
//! thread (a panic hook that restores first, then reports).

use std::io::{self, Stdout, Write};
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use crossterm::cursor::Show;
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

type Hook = Box<dyn Fn(&std::panic::PanicHookInfo<'_>) + Sync + Send + 'static>;

/// Panic messages of other threads while the dashboard owns the screen;
/// printing them would garble it, so the event loop shows them in the log.
static OTHER_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Takes the panic messages of other threads collected so far.
pub fn take_other_panics() -> Vec<String> {
    OTHER_PANICS
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}

/// True between entering the dashboard screen and restoring it.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back: cooked mode, main screen, visible cursor. Only
/// the first call after [`TerminalGuard::enter`] acts: leaving the alternate
/// screen twice would move the cursor over what was printed in between
/// (e.g. the panic message).
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    }
}

/// The dashboard's terminal; restores it when dropped.
pub struct TerminalGuard {
    /// The ratatui terminal on stdout. Never dropped: its `Drop` prints to
    /// stderr when the cursor cannot be shown, which panics once the
    /// terminal is gone (SIGHUP); [`restore`] does its work instead.
    pub terminal: ManuallyDrop<Terminal<CrosstermBackend<Stdout>>>,
    previous_hook: Arc<Hook>,
}

impl TerminalGuard {
    /// Raw mode, alternate screen, and a panic hook that restores the
    /// terminal before the panic message is printed.
    pub fn enter() -> io::Result<TerminalGuard> {
        let previous_hook: Arc<Hook> = Arc::new(std::panic::take_hook());
        let ui: ThreadId = std::thread::current().id();
        let previous = Arc::clone(&previous_hook);
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == ui {
                restore();
                previous(info);
            } else if let Ok(mut v) = OTHER_PANICS.lock() {
                let name = std::thread::current()
                    .name()
                    .unwrap_or("a thread")
                    .to_string();
                v.push(format!("{name} panicked: {info}"));
            }
        }));
        let setup = || -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
            ACTIVE.store(true, Ordering::SeqCst);
            enable_raw_mode()?;
            execute!(io::stdout(), EnterAlternateScreen)?;
            let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
            terminal.hide_cursor()?;
            terminal.clear()?;
            Ok(terminal)
        };
        match setup() {
            Ok(terminal) => Ok(TerminalGuard {
                terminal: ManuallyDrop::new(terminal),
                previous_hook,
            }),
            Err(e) => {
                restore();
                reinstall(&previous_hook);
                Err(e)
            }
        }
    }
}

fn reinstall(previous: &Arc<Hook>) {
    let previous = Arc::clone(previous);
    std::panic::set_hook(Box::new(move |info| previous(info)));
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        // `set_hook` panics on a panicking thread (an abort in a destructor);
        // then our hook simply stays: it restores and defers to the old one.
        if !std::thread::panicking() {
            reinstall(&self.previous_hook);
        }
        // Whatever other threads reported meanwhile is not lost; a dead
        // terminal must not turn this into a panic (no eprintln!).
        let mut stderr = io::stderr();
        for message in take_other_panics() {
            let _ = writeln!(stderr, "{message}");
        }
    }
}
