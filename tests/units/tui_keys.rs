//! Key handling: the right commands, confirmations and inline validation.

use crate::support;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use esr_ea::engine::{Command, Event};
use esr_ea::search::Status;
use esr_ea::tui::{Action, App, Mode, Overlay, Pane};
use support::*;

fn mid(mode: Mode) -> App {
    let events = recorded();
    app_from(&mid_run(&events), mode)
}

fn select_queued(app: &mut App) -> u64 {
    let index = app
        .view
        .population
        .iter()
        .position(|m| {
            m.status == Status::Pending && !app.view.live.get(&m.id).is_some_and(|l| l.training)
        })
        .expect("a queued member");
    // Move there with the keys, as a person would.
    app.on_key(key(KeyCode::Home));
    for _ in 0..index {
        app.on_key(ch('j'));
    }
    assert_eq!(app.pop_selected, index);
    app.view.population[index].id
}

#[test]
fn pause_then_resume_after_the_engine_confirms() {
    let mut app = mid(Mode::InProcess);
    assert_eq!(app.on_key(ch('p')), Some(Action::Send(Command::Pause)));
    app.apply(&Event::Paused);
    assert_eq!(app.on_key(ch('p')), Some(Action::Send(Command::Resume)));
    assert!(app
        .view
        .log
        .iter()
        .any(|l| l.level == "you" && l.text == "pause"));
}

#[test]
fn kill_asks_first() {
    let mut app = mid(Mode::InProcess);
    let id = select_queued(&mut app);
    assert_eq!(app.on_key(ch('x')), None);
    assert_eq!(app.overlay, Some(Overlay::ConfirmKill { id }));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains(&format!("Kill member #{id}?")), "{screen}");
    // n keeps it.
    assert_eq!(app.on_key(ch('n')), None);
    assert_eq!(app.overlay, None);
    // y kills it.
    app.on_key(ch('x'));
    assert_eq!(
        app.on_key(ch('y')),
        Some(Action::Send(Command::Kill { id }))
    );
    assert_eq!(app.overlay, None);
    // The training member can be killed too.
    let training = select_training(&mut app);
    app.on_key(ch('x'));
    assert_eq!(
        app.on_key(ch('y')),
        Some(Action::Send(Command::Kill { id: training }))
    );
}

#[test]
fn a_kill_confirmation_closes_when_the_member_ends_meanwhile() {
    let mut app = mid(Mode::InProcess);
    let id = select_training(&mut app);
    app.on_key(ch('x'));
    assert_eq!(app.overlay, Some(Overlay::ConfirmKill { id }));
    app.apply(&Event::Failed {
        id,
        reason: "out of memory".into(),
    });
    assert_eq!(app.overlay, None);
    assert!(app.flash.as_deref().unwrap().contains("ended meanwhile"));
    assert_eq!(app.on_key(ch('y')), None, "nothing is killed by a stray y");
}

#[test]
fn kill_and_mutate_refuse_done_members_with_a_reason() {
    let mut app = mid(Mode::InProcess);
    let index = app
        .view
        .population
        .iter()
        .position(|m| m.status.is_done())
        .expect("a done member");
    app.pop_selected = index;
    assert_eq!(app.on_key(ch('x')), None);
    assert_eq!(app.overlay, None);
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("only queued or training"));
    assert_eq!(app.on_key(ch('m')), None);
    select_training(&mut app);
    assert_eq!(app.on_key(ch('m')), None);
    assert!(
        app.flash.as_deref().unwrap().contains("is training"),
        "{:?}",
        app.flash
    );
    // Elites are not steered.
    app.focus = Pane::Elites;
    assert_eq!(app.on_key(ch('x')), None);
    assert!(app.flash.as_deref().unwrap().contains("population"));
}

#[test]
fn mutate_sends_for_the_selected_queued_member() {
    let mut app = mid(Mode::InProcess);
    let id = select_queued(&mut app);
    assert_eq!(
        app.on_key(ch('m')),
        Some(Action::Send(Command::Mutate { id, genes: None }))
    );
}

#[test]
fn inject_rejects_bad_genes_inline_and_sends_good_ones() {
    let mut app = mid(Mode::InProcess);
    assert_eq!(app.on_key(ch('i')), None);
    assert!(matches!(app.overlay, Some(Overlay::Inject(_))));
    // A gene that is not in the search space.
    type_text(&mut app, "S_4_16_99");
    assert_eq!(app.on_key(key(KeyCode::Enter)), None);
    let Some(Overlay::Inject(input)) = &app.overlay else {
        panic!("the prompt stays open");
    };
    let error = input.error.clone().expect("an inline error");
    assert!(error.contains("S_4_16_99"), "{error}");
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains("not sent: invalid gene 'S_4_16_99'"),
        "{screen}"
    );
    // Malformed text.
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut app, "S_4_16");
    assert_eq!(app.on_key(key(KeyCode::Enter)), None);
    let Some(Overlay::Inject(input)) = &app.overlay else {
        panic!()
    };
    assert!(input.error.as_deref().unwrap().contains("4 fields"));
    // Too few blocks.
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut app, "S_4_16_16");
    assert_eq!(app.on_key(key(KeyCode::Enter)), None);
    let Some(Overlay::Inject(input)) = &app.overlay else {
        panic!()
    };
    assert!(
        input.error.as_deref().unwrap().contains("min_active"),
        "{input:?}"
    );
    // Outside the budget.
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut app, "G_4_8_8 G_4_8_8 G_4_8_8 G_4_8_8");
    assert_eq!(app.on_key(key(KeyCode::Enter)), None);
    let Some(Overlay::Inject(input)) = &app.overlay else {
        panic!()
    };
    let error = input.error.as_deref().unwrap();
    assert!(
        error.contains("below the budget 100,000..160,000"),
        "{error}"
    );
    // Esc sends nothing.
    assert_eq!(app.on_key(key(KeyCode::Esc)), None);
    assert_eq!(app.overlay, None);
    // A valid list goes out as separate gene strings.
    app.on_key(ch('i'));
    type_text(
        &mut app,
        "S_4_16_16, G_4_16_16 C_4_16_16 S_6_16_24 G_6_24_24",
    );
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("ok: 5 blocks"), "{screen}");
    let genes: Vec<String> = "S_4_16_16 G_4_16_16 C_4_16_16 S_6_16_24 G_6_24_24"
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        Some(Action::Send(Command::Inject { genes }))
    );
    assert_eq!(app.overlay, None);
}

#[test]
fn export_asks_how_many() {
    let mut app = mid(Mode::InProcess);
    assert_eq!(app.on_key(ch('e')), None);
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        Some(Action::Send(Command::Export { top: 4, dir: None }))
    );
    app.on_key(ch('e'));
    app.on_key(key(KeyCode::Backspace));
    type_text(&mut app, "x");
    assert_eq!(app.on_key(key(KeyCode::Enter)), None);
    let Some(Overlay::Export(input)) = &app.overlay else {
        panic!()
    };
    assert!(input.error.as_deref().unwrap().contains("whole number"));
    app.on_key(key(KeyCode::Backspace));
    type_text(&mut app, "2");
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        Some(Action::Send(Command::Export { top: 2, dir: None }))
    );
}

#[test]
fn quit_in_process_confirms_then_stops() {
    let mut app = mid(Mode::InProcess);
    assert_eq!(app.on_key(ch('q')), None);
    assert_eq!(app.overlay, Some(Overlay::ConfirmQuit));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("esr-ea search --resume"), "{screen}");
    // n keeps watching: the engine lives here, it cannot be left running.
    assert_eq!(app.on_key(ch('n')), None);
    assert_eq!(app.overlay, None);
    app.on_key(ch('q'));
    assert_eq!(app.on_key(key(KeyCode::Esc)), None);
    app.on_key(ch('q'));
    assert_eq!(
        app.on_key(ch('y')),
        Some(Action::Quit { stop_search: true })
    );
    assert!(app.stop_requested());
    // Pressed again while stopping: leave at once.
    assert_eq!(
        app.on_key(ch('q')),
        Some(Action::Quit { stop_search: false })
    );
}

#[test]
fn ctrl_c_twice_checkpoints_and_stops() {
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    for mode in [Mode::InProcess, Mode::Attached] {
        let mut app = mid(mode);
        assert_eq!(app.on_key(ctrl_c), None);
        assert_eq!(app.overlay, Some(Overlay::ConfirmQuit));
        let screen = text(&render(&app, 80, 24));
        assert!(screen.contains("y/Ctrl-C"), "{screen}");
        assert_eq!(app.on_key(ctrl_c), Some(Action::Quit { stop_search: true }));
        assert!(app.stop_requested());
        // A plain c in the dialog is not a confirmation.
        let mut app = mid(mode);
        app.on_key(ctrl_c);
        assert_eq!(app.on_key(ch('c')), None);
        assert_eq!(app.overlay, Some(Overlay::ConfirmQuit));
    }
}

#[test]
fn quit_attached_can_detach_or_stop() {
    let mut app = mid(Mode::Attached);
    app.on_key(ch('q'));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("leave it running"), "{screen}");
    assert_eq!(app.on_key(ch('n')), Some(Action::Detach));
    let mut app = mid(Mode::Attached);
    app.on_key(ch('q'));
    assert_eq!(
        app.on_key(ch('y')),
        Some(Action::Quit { stop_search: true })
    );
}

#[test]
fn after_the_end_q_leaves_and_commands_are_refused() {
    let events = recorded();
    let mut app = app_from(&events, Mode::InProcess);
    assert_eq!(app.on_key(ch('p')), None);
    assert!(app.flash.as_deref().unwrap().contains("finished"));
    assert_eq!(
        app.on_key(ch('q')),
        Some(Action::Quit { stop_search: false })
    );
}

#[test]
fn overlays_close_with_esc_and_navigation_moves() {
    let mut app = mid(Mode::InProcess);
    app.on_key(ch('?'));
    assert_eq!(app.overlay, Some(Overlay::Help));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("inject a gene list"), "{screen}");
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.overlay, None);
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.overlay, Some(Overlay::Detail));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("CxG   in->out  params"), "{screen}");
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.overlay, None);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Elites);
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.elite_selected, 1);
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.focus, Pane::Log);
    app.on_key(key(KeyCode::BackTab));
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.focus, Pane::Population);
    app.on_key(key(KeyCode::End));
    assert_eq!(app.pop_selected, app.view.population.len() - 1);
    app.on_key(ch('k'));
    assert_eq!(app.pop_selected, app.view.population.len() - 2);
}

/// The whole recorded search, then the pipeline's full training of one
/// finalist, 45% in, 1m23s left by its own estimate.
fn fully_training() -> App {
    let mut events = recorded();
    events.push(Event::StageDone {
        stage: "search".into(),
        seconds: 30.0,
    });
    events.push(Event::StageStarted {
        stage: "fully_train".into(),
        index: 1,
        stages: 4,
    });
    events.push(Event::FinalStarted {
        rank: 1,
        member_id: 3,
        genes: vec!["S_4_16_16".into()],
        params: 120_000,
        step: 0,
        steps: 1000,
        device: "cpu".into(),
        bicubic_psnr: 30.0,
    });
    events.push(Event::FinalProgress {
        rank: 1,
        step: 450,
        steps: 1000,
        loss: 0.02,
        eta_seconds: 83.0,
    });
    app_from(&events, Mode::InProcess)
}

#[test]
fn after_the_search_the_keys_and_header_follow_the_stage() {
    let mut app = fully_training();
    let screen = text(&render(&app, 80, 24));
    let (header, footer) = (
        screen.lines().next().unwrap(),
        screen.lines().last().unwrap(),
    );
    // The header tells the stage and its own progress and ETA, not the
    // search's last generation.
    assert!(header.contains("stage 2/4 fully_train"), "{header}");
    assert!(header.contains("finals 0/1 45%"), "{header}");
    assert!(header.contains("ETA 1m23s"), "{header}");
    assert!(!header.contains("gen 2/2"), "{header}");
    // Only what still applies is offered.
    for gone in ["x kill", "m mutate", "i inject", "e export", "Tab", "Enter"] {
        assert!(!footer.contains(gone), "{gone} offered: {footer}");
    }
    for kept in ["q quit", "p pause", "? help"] {
        assert!(footer.contains(kept), "{kept} missing: {footer}");
    }
    // Pressed anyway, each says why in the status line (80x24 has no log pane).
    for (c, word) in [('x', "killed"), ('m', "mutated"), ('i', "injected")] {
        assert_eq!(app.on_key(ch(c)), None);
        assert_eq!(app.overlay, None);
        let flash = app.flash.clone().unwrap();
        assert!(
            flash.contains("the search is over (fully_train runs now)") && flash.contains(word),
            "{flash}"
        );
        let screen = text(&render(&app, 80, 24));
        assert!(
            screen
                .lines()
                .last()
                .unwrap()
                .contains("the search is over"),
            "{screen}"
        );
    }
    assert_eq!(app.on_key(ch('e')), None);
    assert!(app.flash.as_deref().unwrap().contains("export/"));
    assert_eq!(app.on_key(key(KeyCode::Enter)), None);
    assert_eq!(app.overlay, None, "no details of a member no longer shown");
    assert!(app
        .flash
        .as_deref()
        .unwrap()
        .contains("shows the finalists"));
    // Pause still applies to the full training.
    assert_eq!(app.on_key(ch('p')), Some(Action::Send(Command::Pause)));
}

#[test]
fn a_prompt_open_when_the_search_ends_closes_and_says_so() {
    let events = recorded();
    let end = events
        .iter()
        .position(|e| matches!(e, Event::Finished { .. }))
        .unwrap();
    let mut app = app_from(&events[..end], Mode::InProcess);
    app.on_key(ch('i'));
    assert!(matches!(app.overlay, Some(Overlay::Inject(_))));
    app.apply(&events[end]);
    assert_eq!(app.overlay, None);
    assert!(app.flash.as_deref().unwrap().contains("nothing sent"));
    // Reopened as the pipeline's next stage starts: closed again, and said.
    app.overlay = Some(Overlay::Inject(Default::default()));
    app.apply(&Event::StageStarted {
        stage: "fully_train".into(),
        index: 1,
        stages: 4,
    });
    assert_eq!(app.overlay, None);
    let flash = app.flash.as_deref().unwrap();
    assert!(flash.contains("fully_train runs now") && flash.contains("nothing sent"));
}

#[test]
fn inject_shows_the_problem_as_it_is_typed() {
    let mut app = mid(Mode::InProcess);
    app.on_key(ch('i'));
    let error = |app: &App| match &app.overlay {
        Some(Overlay::Inject(input)) => input.error.clone(),
        other => panic!("{other:?}"),
    };
    // Gene syntax, before any Enter.
    type_text(&mut app, "S_4_16");
    assert!(
        error(&app).unwrap().contains("4 fields"),
        "{:?}",
        error(&app)
    );
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("4 fields"), "{screen}");
    assert!(
        !screen.contains("not sent"),
        "nothing was refused yet: {screen}"
    );
    // Too few blocks.
    type_text(&mut app, "_16");
    assert!(error(&app).unwrap().contains("min_active"));
    // Over the budget, then fine.
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert_eq!(error(&app), None, "an empty prompt has no problem yet");
    type_text(&mut app, "G_4_8_8 G_4_8_8 G_4_8_8 G_4_8_8");
    assert!(error(&app).unwrap().contains("below the budget"));
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(
        &mut app,
        "S_4_16_16 G_4_16_16 C_4_16_16 S_6_16_24 G_6_24_24",
    );
    assert_eq!(error(&app), None);
    assert!(text(&render(&app, 80, 24)).contains("ok: 5 blocks"));
}
