//! The dashboard drawn on ratatui's TestBackend from a recorded event
//! sequence of a real engine (stand-in trainer).

use crate::support;

use esr_ea::engine::Event;
use esr_ea::search::Status;
use esr_ea::tui::{Glyphs, Look, Mode, Pane};
use ratatui::style::Color;
use support::*;

#[test]
fn compact_80x24_shows_genes_gauge_chart_and_states() {
    let events = recorded();
    let mut app = app_from(&mid_run(&events), Mode::InProcess);
    let id = select_training(&mut app);
    let screen = text(&render(&app, 80, 24));
    // Header: generation 2 of 2, state.
    assert!(screen.contains("gen 2/2"), "{screen}");
    assert!(screen.contains("[RUNNING]"), "{screen}");
    // Gene strings: every row shows at least its first gene.
    for m in &app.view.population {
        let first = m.genes.iter().next().unwrap().to_string();
        assert!(
            screen.contains(&first),
            "#{} {first} missing:\n{screen}",
            m.id
        );
    }
    // States.
    assert!(screen.contains("train 50%"), "{screen}");
    assert!(screen.contains("queued"), "{screen}");
    assert!(
        screen.contains("done") || screen.contains("cached"),
        "{screen}"
    );
    // Budget gauge and the loss chart of the selected (training) member.
    assert!(screen.contains("100k ["), "{screen}");
    assert!(screen.contains("] 160k"), "{screen}");
    assert!(screen.contains(&format!("loss #{id}")), "{screen}");
    assert!(screen.contains("step"), "{screen}");
    assert!(screen.contains('•'), "chart points:\n{screen}");
    // Footer keys.
    assert!(
        screen.contains("q quit") && screen.contains("? help"),
        "{screen}"
    );
    for line in screen.lines() {
        assert_eq!(line.chars().count(), 80);
    }
}

#[test]
fn large_200x50_shows_every_pane() {
    let events = recorded();
    let mut app = app_from(&mid_run(&events), Mode::InProcess);
    let id = select_training(&mut app);
    let screen = text(&render(&app, 200, 50));
    for title in [
        "population, generation 2",
        "elites",
        "PSNR per generation",
        " log ",
        &format!("loss #{id}"),
        &format!("#{id} detail"),
    ] {
        assert!(screen.contains(title), "{title} missing:\n{screen}");
    }
    // Wide rows show whole gene lists of the population.
    let m = &app.view.population[0];
    assert!(screen.contains(&m.genes.to_string()), "{screen}");
    // The detail pane lists blocks with kind names and in->out.
    assert!(screen.contains("CxG   in->out  params"), "{screen}");
    assert!(screen.contains("shrink") || screen.contains("group") || screen.contains("contextual"));
    assert!(screen.contains("->"), "{screen}");
    assert!(screen.contains("lr 1.0e-3"), "{screen}");
    // The elites of generation 1 and the best-so-far line.
    let best = app.view.elites[0].fitness().unwrap();
    assert!(screen.contains(&format!("{best:.3}")), "{screen}");
    assert!(screen.contains("best so far"), "{screen}");
}

#[test]
fn a_finished_run_says_so() {
    let events = recorded();
    let app = app_from(&events, Mode::InProcess);
    assert!(matches!(
        events.last(),
        Some(Event::Finished { complete: true, .. })
    ));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("[FINISHED]"), "{screen}");
    assert!(!app
        .view
        .population
        .iter()
        .any(|m| m.status == Status::Pending));
    let mut app = app;
    app.focus = Pane::Elites;
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("[elites]"), "{screen}");
    assert!(screen.contains("PSNR per generation"), "{screen}");
}

#[test]
fn too_small_terminal_is_explained() {
    let events = recorded();
    let mut app = app_from(&mid_run(&events), Mode::InProcess);
    select_training(&mut app);
    let screen = text(&render(&app, 40, 10));
    let flat = screen.replace('\n', "");
    let flat: String = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("terminal too small: need at least 60x16, have 40x10"),
        "{screen}"
    );
    // The minimum itself draws the dashboard.
    let screen = text(&render(&app, 60, 16));
    assert!(!screen.contains("too small"), "{screen}");
    assert!(
        screen.contains("q quit") && screen.contains("? help"),
        "{screen}"
    );
    assert!(screen.contains("train 50%"), "{screen}");
}

#[test]
fn no_color_draws_without_colour() {
    let events = recorded();
    let mut app = app_from(&mid_run(&events), Mode::InProcess).with_look(Look {
        colors: false,
        glyphs: Glyphs::Unicode,
    });
    select_training(&mut app);
    for (w, h) in [(80, 24), (200, 50)] {
        let buf = render(&app, w, h);
        for cell in buf.content.iter() {
            assert_eq!(cell.fg, Color::Reset, "{:?}", cell);
            assert_eq!(cell.bg, Color::Reset, "{:?}", cell);
        }
    }
    // With colours, genes are coloured by kind.
    let coloured = app.clone().with_look(plain());
    let buf = render(&coloured, 80, 24);
    assert!(buf
        .content
        .iter()
        .any(|c| c.fg == Color::Cyan || c.fg == Color::Green));
}

#[test]
fn ascii_glyphs_draw_only_ascii() {
    let events = recorded();
    let mut app = app_from(&mid_run(&events), Mode::InProcess).with_look(Look {
        colors: true,
        glyphs: Glyphs::Ascii,
    });
    select_training(&mut app);
    for (w, h) in [(80, 24), (200, 50)] {
        let screen = text(&render(&app, w, h));
        assert!(screen.is_ascii(), "{screen}");
        assert!(screen.contains("+-"), "ASCII borders:\n{screen}");
        assert!(screen.contains('*'), "ASCII chart points:\n{screen}");
    }
}

/// The recorded run as if its engine had told a bicubic PSNR between its
/// members' fitnesses: some above, some below.
fn with_bicubic(events: &[Event]) -> (Vec<Event>, f64) {
    let fits: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Evaluated { evaluation, .. } => Some(evaluation.psnr),
            _ => None,
        })
        .collect();
    let (lo, hi) = fits
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), f| (lo.min(*f), hi.max(*f)));
    assert!(hi > lo, "the stand-in trainer scores differ");
    let bicubic = (lo + hi) / 2.0;
    let events = events
        .iter()
        .cloned()
        .map(|mut e| {
            if let Event::RunStarted { bicubic_psnr, .. } = &mut e {
                *bicubic_psnr = Some(bicubic);
            }
            e
        })
        .collect();
    (events, bicubic)
}

#[test]
fn the_generation_chart_draws_bicubic_as_a_line() {
    let braille = |screen: &str| {
        screen
            .chars()
            .any(|c| ('\u{2801}'..='\u{28ff}').contains(&c))
    };
    let (events, bicubic) = with_bicubic(&recorded());
    let app = app_from(&mid_run(&events), Mode::InProcess);
    let screen = text(&render(&app, 200, 50));
    let title = format!("PSNR per generation vs bicubic {bicubic:.2} dB");
    assert!(screen.contains(&title), "{title} missing:\n{screen}");
    // The level sits between the generations' PSNRs, so its line is drawn
    // inside the plot (the only braille line on this screen).
    assert!(braille(&screen), "no bicubic line:\n{screen}");

    let plain = app_from(&mid_run(&recorded()), Mode::InProcess);
    let screen = text(&render(&plain, 200, 50));
    assert!(screen.contains("PSNR per generation"), "{screen}");
    assert!(!screen.contains("vs bicubic "), "{screen}");
    assert!(!braille(&screen), "{screen}");
}

#[test]
fn tables_show_each_fitness_as_db_over_bicubic_at_80x24_and_large() {
    let (events, bicubic) = with_bicubic(&recorded());
    let mut app = app_from(&mid_run(&events), Mode::InProcess);
    select_training(&mut app);
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("vs bic"), "{screen}");
    let done: Vec<f64> = app
        .view
        .population
        .iter()
        .filter_map(|m| m.fitness())
        .collect();
    assert!(!done.is_empty());
    for f in &done {
        let cell = format!("{:+.2}", f - bicubic);
        assert!(screen.contains(&cell), "{cell} missing:\n{screen}");
    }
    // Still usable: every row shows its first gene, its state, and fits.
    for m in &app.view.population {
        let first = m.genes.iter().next().unwrap().to_string();
        assert!(
            screen.contains(&first),
            "#{} {first} missing:\n{screen}",
            m.id
        );
    }
    assert!(
        screen.contains("train 50%") && screen.contains("queued"),
        "{screen}"
    );
    assert!(
        screen.contains("dB vs bicubic)"),
        "best-so-far line: {screen}"
    );
    for line in screen.lines() {
        assert_eq!(line.chars().count(), 80);
    }

    // The elites table, compact and in the large layout.
    app.focus = Pane::Elites;
    for (w, h) in [(80, 24), (120, 34)] {
        let screen = text(&render(&app, w, h));
        assert!(screen.contains("vs bic"), "{w}x{h}:\n{screen}");
        for m in &app.view.elites {
            let cell = format!("{:+.2}", m.fitness().unwrap() - bicubic);
            assert!(screen.contains(&cell), "{w}x{h}: {cell} missing:\n{screen}");
        }
    }

    // Without a known bicubic (an older run) there is no such column.
    let plain = app_from(&mid_run(&recorded()), Mode::InProcess);
    assert!(!text(&render(&plain, 80, 24)).contains("vs bic"));

    // The end of the search logs where the best stands against bicubic.
    let finished = app_from(&events, Mode::InProcess);
    let best = finished.view.elites[0].fitness().unwrap();
    assert!(best > bicubic);
    assert!(
        finished.view.log.iter().any(|l| l
            .text
            .contains(&format!("{:.2} dB above bicubic", best - bicubic))),
        "{:?}",
        finished.view.log
    );
}

#[test]
fn halving_states_show_in_the_table_and_the_detail_pane() {
    let mut events = mid_run(&recorded());
    let Some(Event::Generation {
        generation,
        members,
    }) = events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::Generation { .. }))
        .cloned()
    else {
        panic!("a generation event");
    };
    // What the engine announces after a member reached a halving
    // checkpoint and another was promoted at it.
    let mut members = members;
    let rung = |loss: f64| esr_ea::search::Rung {
        rung: 0,
        step: 12,
        loss,
        checkpoint_losses: vec![loss],
        seconds: 1.0,
    };
    members[0].status = Status::Waiting(rung(0.125));
    members[1].status = Status::Promoted(rung(0.0625));
    let (waiting, promoted) = (members[0].id, members[1].id);
    events.push(Event::Queued { id: waiting });
    events.push(Event::Queued { id: promoted });
    events.push(Event::Generation {
        generation,
        members,
    });
    let mut app = app_from(&events, Mode::InProcess);
    let screen = text(&render(&app, 200, 50));
    assert!(screen.contains("wait @12"), "{screen}");
    assert!(screen.contains("promoted"), "{screen}");
    app.pop_selected = 0;
    let screen = text(&render(&app, 200, 50));
    assert!(
        screen.contains("waits at step 12 (mean loss 0.12500) for its generation"),
        "{screen}"
    );
}

#[test]
fn the_generation_chart_legend_keeps_clear_of_the_newest_points() {
    let app = app_from(&recorded(), Mode::InProcess);
    let screen = text(&render(&app, 200, 50));
    let rows: Vec<Vec<char>> = screen.lines().map(|l| l.chars().collect()).collect();
    let find = |row: &[char], what: &str, from: usize| -> Option<usize> {
        let what: Vec<char> = what.chars().collect();
        (from..row.len().saturating_sub(what.len() - 1)).find(|&i| row[i..].starts_with(&what))
    };
    let (top, title) = rows
        .iter()
        .enumerate()
        .find_map(|(r, row)| find(row, "PSNR per generation", 0).map(|c| (r, c)))
        .expect("the chart's pane");
    let left = title - 2;
    let right = (title..rows[top].len())
        .find(|&c| rows[top][c] == '┐')
        .expect("its right edge");
    let (row, col) = rows[top + 1..]
        .iter()
        .enumerate()
        .find_map(|(r, row)| find(&row[..right], "mean", left).map(|c| (top + 1 + r, c)))
        .expect("a legend naming the mean");
    // The newest generation is drawn at the right end, an improving one high:
    // the legend is no longer in the top right corner.
    let bottom = (top + 1..rows.len())
        .find(|&r| rows[r].get(left) == Some(&'└'))
        .expect("its bottom edge");
    assert!(
        col < (left + right) / 2 || row > (top + bottom) / 2,
        "legend at row {row} col {col} in {left}..{right}:\n{screen}"
    );
}

/// The whole 80x24 screen, cell by cell (ratatui's buffer, as text): a
/// broken layout (a pane a row too high, a column cut, a border lost) fails
/// here even where every word is still somewhere on the screen. Only the
/// header's run directory (a temporary name) and its clock (real time) vary
/// between runs; they are checked apart.
#[test]
fn compact_80x24_screen_is_exactly_as_drawn() {
    let events = recorded();
    let mut app = app_from(&mid_run(&events), Mode::InProcess);
    select_training(&mut app);
    let buffer = render(&app, 80, 24);
    assert_eq!((buffer.area.width, buffer.area.height), (80, 24));
    let screen = text(&buffer);
    let mut lines: Vec<&str> = screen.lines().collect();
    let header = lines.remove(0);
    assert!(
        header.starts_with("esr-ea-test-recorded-")
            && header.contains("  cpu  gen 2/2  ind 5/8  ")
            && header.trim_end().ends_with("[RUNNING]"),
        "{header}"
    );
    let expected = [
        "best so far 28.417 dB  #1 g1  150k params  G_6_8_32 G_4_8_32 C_4_8_24 +4        ",
        "┌ [population] elites log (Tab) ───────────────────────────────────────────────┐",
        "│ id  genes                          params bud  M-Adds loss   PSNR  state     │",
        "│ #8  G_6_8_32 G_4_8_32 C_4_8_24 +4  150k   83%  33.8G  0.1250 28.42 cached    │",
        "│ #9  S_4_24_24 C_4_8_32 S_6_8_32 +3 145k   74%  33.3G  0.1250 28.37 cached    │",
        "│ #10 G_4_8_16 C_4_16_24 +3          104k   7%   23.4G  0.1250 28.30 done      │",
        "│ #11 S_8_16_24 C_4_8_24 +3          115k   25%  25.6G  0.1250 28.26 done      │",
        "│>#12 G_6_8_32 C_8_8_8 G_8_16_32 +1  103k   5%   22.7G  0.2500 -     train 50% │",
        "│ #13 S_4_24_24 C_4_8_32 S_6_8_32 +4 157k   95%  35.5G  -      -     queued    │",
        "│ #14 G_6_8_32 G_4_8_32 C_4_8_24 +3  115k   26%  26.6G  -      -     queued    │",
        "│ #15 S_4_24_24 S_6_8_16 S_6_8_32 +4 130k   50%  29.5G  -      -     queued    │",
        "└──────────────────────────────────────────────────────────────────────────────┘",
        "┌ #12 detail (Enter) ──────────────────┐┌ loss #12 ────────────────────────────┐",
        "│train 50%  gen 2  crossover of #3 x #0││0.5000│        •                      │",
        "│step 2/4  on cpu  lr 1.0e-3           ││      │         ••                    │",
        "│params 103,227 (5% of budget)         ││      │           •                   │",
        "│100k [=|........................] 160k││      │            •                  │",
        "│4 blocks     CxG   in->out  params    ││      │             ••                │",
        "│G group       6x8   32->32    6,312   ││0.2500│               •               │",
        "│C contextual  8x8   32->8     7,384   ││      └───────────────────────────────│",
        "│... 2 more lines: Enter for all       ││      0                        4 steps│",
        "└──────────────────────────────────────┘└──────────────────────────────────────┘",
        "q quit  p pause  x kill  m mutate  i inject  e export  Tab pane  ? help         ",
    ];
    for (row, (got, want)) in lines.iter().zip(expected).enumerate() {
        assert_eq!(*got, want, "row {} of the screen:\n{screen}", row + 2);
    }
    assert_eq!(lines.len(), expected.len());
}
