//! Rough edges found in the walkthrough with real training at 80x24 (see
//! `/work/notes/tui_walkthrough.txt`), each pinned down here.

use crate::support;

use crossterm::event::KeyCode;
use esr_ea::engine::{Command, Event};
use esr_ea::search::Status;
use esr_ea::tui::{Action, App, Mode, Pane};
use support::*;

fn mid(mode: Mode) -> App {
    app_from(&mid_run(&recorded()), mode)
}

/// The screen's rows, each cut to the columns `from..to`.
fn region(screen: &str, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> String {
    screen
        .lines()
        .skip(rows.start)
        .take(rows.len())
        .map(|l| {
            l.chars()
                .skip(cols.start)
                .take(cols.len())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_replayed_export_does_not_claim_the_footer() {
    // Resuming or attaching replays the run's history, old exports included.
    let mut app = mid(Mode::Attached);
    app.apply(&Event::Exported {
        dir: "/tmp/run/export".into(),
        count: 1,
    });
    assert_eq!(app.flash, None);
    assert!(app.view.log.iter().all(|l| l.level != "you"));
}

#[test]
fn an_own_export_is_answered_with_the_count_and_why_fewer() {
    let mut app = mid(Mode::InProcess);
    app.on_key(ch('e'));
    app.on_key(key(KeyCode::Backspace));
    type_text(&mut app, "3");
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        Some(Action::Send(Command::Export { top: 3, dir: None }))
    );
    app.apply(&Event::Exported {
        dir: "/tmp/run/export".into(),
        count: 1,
    });
    assert_eq!(
        app.flash.as_deref(),
        Some("exported 1 architecture to /tmp/run/export (asked 3: only 1 trained so far)")
    );
    // Answered once: a later export (another viewer's) leaves the footer alone.
    app.flash = None;
    app.apply(&Event::Exported {
        dir: "/tmp/run/export".into(),
        count: 2,
    });
    assert_eq!(app.flash, None);
}

#[test]
fn a_failed_export_is_answered_in_the_footer() {
    let mut app = mid(Mode::InProcess);
    app.on_key(ch('e'));
    app.on_key(key(KeyCode::Enter));
    app.apply(&Event::Log {
        level: "error".into(),
        message: "export failed: nothing to export yet".into(),
    });
    assert_eq!(
        app.flash.as_deref(),
        Some("export failed: nothing to export yet")
    );
}

#[test]
fn prompts_name_the_run_directory() {
    let mut app = mid(Mode::InProcess).with_run_dir("/tmp/walk");
    app.on_key(ch('q'));
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains("esr-ea search --resume /tmp/walk"),
        "{screen}"
    );
    app.on_key(key(KeyCode::Esc));
    app.on_key(ch('e'));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("/tmp/walk/export"), "{screen}");
    // Unknown (a bare App): a placeholder, never a wrong path.
    let mut app = mid(Mode::InProcess);
    app.on_key(ch('e'));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("export/ folder"), "{screen}");
}

#[test]
fn the_stop_message_names_the_run_directory() {
    let mut app = mid(Mode::InProcess).with_run_dir("/tmp/walk");
    app.apply(&Event::Finished {
        complete: false,
        elites: Vec::new(),
        cache_hits: 0,
    });
    let last = app.view.log.back().unwrap();
    assert!(
        last.text.ends_with("esr-ea search --resume /tmp/walk"),
        "{}",
        last.text
    );
}

#[test]
fn the_compact_detail_pane_shows_a_done_members_psnr() {
    let mut app = mid(Mode::InProcess);
    let (index, psnr) = app
        .view
        .population
        .iter()
        .enumerate()
        .find_map(|(i, m)| match &m.status {
            Status::Evaluated(e) => Some((i, e.psnr)),
            _ => None,
        })
        .expect("a trained member");
    app.pop_selected = index;
    let screen = text(&render(&app, 80, 24));
    // The detail pane: below the table, left half.
    let pane = region(&screen, 8..23, 0..40);
    assert!(pane.contains(&format!("{psnr:.3} dB")), "{pane}");
}

#[test]
fn the_detail_overlay_gives_the_loss_chart_the_free_rows() {
    let mut app = mid(Mode::InProcess);
    select_training(&mut app);
    app.on_key(key(KeyCode::Enter));
    let screen = text(&render(&app, 80, 24));
    let rows: Vec<&str> = screen.lines().collect();
    let chart_top = rows
        .iter()
        .position(|r| r.contains("┌ loss #"))
        .unwrap_or_else(|| panic!("no loss chart:\n{screen}"));
    // The first corner below the title is the chart's x axis.
    let axis = (chart_top + 1..rows.len())
        .find(|&i| rows[i].contains("└───"))
        .unwrap();
    assert!(
        axis - chart_top > 5,
        "the chart has {} rows for points:\n{screen}",
        axis - chart_top - 1
    );
    // No blank rows between the block table and the chart.
    assert!(
        !rows[chart_top - 1]
            .trim_matches(|c| c == '│' || c == ' ')
            .is_empty(),
        "{screen}"
    );
}

#[test]
fn long_log_lines_wrap_and_the_newest_stays_visible() {
    let mut app = mid(Mode::InProcess);
    let long = "stopping: checkpointing; the training in flight is dropped and redone on resume, \
                which takes a while on a slow machine";
    app.view.note("info", long);
    app.focus = Pane::Log;
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("redone on"), "{screen}");
    assert!(screen.contains("slow machine"), "{screen}");
}

#[test]
fn pausing_until_the_training_in_flight_ends() {
    let mut app = mid(Mode::InProcess);
    let id = select_training(&mut app);
    app.apply(&Event::Paused);
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("[PAUSING]"), "{screen}");
    app.apply(&Event::Killed { id });
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("[PAUSED]"), "{screen}");
    // The kill of a training member is confirmed in the log.
    assert!(
        app.view
            .log
            .iter()
            .any(|l| l.text == format!("#{id} killed: its training was stopped")),
        "{:?}",
        app.view.log
    );
    app.apply(&Event::Resumed);
    assert_eq!(
        app.view.log.back().unwrap().text,
        "resumed: training starts again"
    );
}

#[test]
fn detaching_from_a_paused_search_says_it_stays_paused() {
    let mut app = mid(Mode::Attached);
    app.apply(&Event::Paused);
    app.on_key(ch('q'));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("it stays paused"), "{screen}");
}

#[test]
fn the_inject_prompt_lists_the_allowed_values() {
    let mut app = mid(Mode::InProcess);
    app.on_key(ch('i'));
    let screen = text(&render(&app, 80, 24));
    let s = &app.problem.space;
    let convs = s
        .conv_num
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("/");
    assert!(screen.contains(&format!("C {convs}")), "{screen}");
    assert!(screen.contains("(O >= G)"), "{screen}");
}

#[test]
fn the_detail_overlay_shows_every_block_of_a_ten_block_member_at_80x24() {
    let mut app = mid(Mode::InProcess);
    let genes: Vec<String> = ["S_4_16_16", "G_4_16_32", "C_4_16_16", "S_6_8_16", "G_6_8_8"]
        .iter()
        .cycle()
        .take(10)
        .map(|g| g.to_string())
        .collect();
    app.view.population[0].genes = esr_ea::space::GeneList::parse_args(&genes).unwrap();
    app.pop_selected = 0;
    app.on_key(key(KeyCode::Enter));
    let screen = text(&render(&app, 80, 24));
    let rows = screen
        .lines()
        .filter(|r| r.contains(" shrink ") || r.contains(" group ") || r.contains(" contextual "))
        .count();
    assert_eq!(rows, 10, "{screen}");
    // With room to spare (a 4-block member), the gene list and a chart show too.
    let mut app = mid(Mode::InProcess);
    select_training(&mut app);
    app.on_key(key(KeyCode::Enter));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("genes"), "{screen}");
    assert!(screen.contains("┌ loss #"), "{screen}");
}

#[test]
fn charts_keep_their_corner_points_visible() {
    // After one generation the best point sits in the top-left corner of the
    // PSNR chart, where an axis title used to cover it.
    let events = recorded();
    let first_done = events
        .iter()
        .position(|e| matches!(e, Event::GenerationDone { .. }))
        .unwrap();
    let mut app = app_from(&events[..=first_done], Mode::InProcess);
    app.focus = Pane::Elites;
    let screen = text(&render(&app, 80, 24));
    let chart = region(&screen, 8..23, 40..80);
    assert!(chart.contains("PSNR per generation"), "{chart}");
    assert_eq!(chart.matches('•').count(), 2, "{chart}");
    assert!(chart.contains("gen 2"), "{chart}");
}

#[test]
fn a_headless_run_stopped_before_any_fitness_says_so_instead_of_an_empty_table() {
    let events = recorded();
    let first_end = events
        .iter()
        .position(|e| esr_ea::engine::run_view::ended_member(e).is_some())
        .expect("a member ends");
    let mut printer = esr_ea::cli::headless::Printer::for_run(std::path::Path::new("runs/r"));
    for e in &events[..first_end] {
        printer.handle(e);
    }
    let lines = printer.handle(&Event::Finished {
        complete: false,
        elites: vec![],
        cache_hits: 0,
    });
    let text = lines.join("\n");
    assert!(
        text.contains("no member got a fitness before the stop"),
        "{text}"
    );
    assert!(!text.contains("rank"), "no empty table: {text}");
}
