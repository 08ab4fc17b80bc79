//! Bicubic as the reference of every fitness: a tiny real search records the
//! bicubic PSNR of its validation images once, and its headless lines,
//! `history.csv`, `arch.txt`, export YAML, event stream and end-of-search
//! sentence all read each fitness against it; an old run saved without it
//! scores it again on resume.

use crate::support;

use std::path::{Path, PathBuf};

use esr_ea::config::Config;
use esr_ea::engine::{RunDir, RunView};
use esr_ea::search::{Problem, Search, SearchState};
use support::cli::{esr_ea, headless_search, stderr, stdout};
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

fn tiny_config(dir: &Path) -> PathBuf {
    tiny_dataset(dir, &["train/astronaut.png", "train/brick.png"]);
    TinySearch {
        seed: 4,
        generations: 2,
        batch_size: 2,
        steps: 3,
        milestone: 2,
    }
    .write(dir, "tiny.yaml")
}

/// The bicubic PSNR of the config's validation images, computed here from
/// the images themselves (plain bicubic upscaling, Y-PSNR with `scale` px
/// shaved, as the fitness scores a network), not by the search's code path.
fn bicubic_here(config: &Path) -> f64 {
    let config = Config::load(config).unwrap().config;
    let scale = config.search_space.scale;
    let val = esr_ea::train::datasets::load_split(
        &config.dataset.test,
        scale,
        &esr_ea::data::DataCache::in_memory(),
    )
    .unwrap();
    assert!(!val.pairs.is_empty());
    let scores: Vec<f64> = val
        .pairs
        .iter()
        .map(|p| {
            let up = esr_ea::data::upscale_bicubic(&p.lr.to_rgb(), scale).unwrap();
            esr_ea::metrics::psnr_y(&up, &p.hr.to_rgb(), scale).unwrap()
        })
        .collect();
    scores.iter().sum::<f64>() / scores.len() as f64
}

fn state(run: &Path) -> SearchState {
    serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap()
}

fn run_search(args: &[&str]) -> String {
    let o = headless_search(args);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// Every row of history.csv with a fitness: its psnr_over_bicubic equals
/// psnr − `bicubic`. Returns how many rows had one.
fn check_history(run: &Path, bicubic: f64) -> usize {
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"psnr_over_bicubic"), "{csv}");
    // The earlier columns keep their places.
    assert_eq!(header[7], "psnr");
    assert_eq!(header[11], "hand_made");
    let mut with_fitness = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{line}");
        if cells[7].is_empty() {
            assert_eq!(cells.last(), Some(&""), "{line}");
            continue;
        }
        let psnr: f64 = cells[7].parse().unwrap();
        let over: f64 = cells.last().unwrap().parse().unwrap();
        assert!(
            (over - (psnr - bicubic)).abs() < 2e-4,
            "{line}: {over} vs {psnr} - {bicubic}"
        );
        with_fitness += 1;
    }
    with_fitness
}

/// The view `attach` (and the dashboard on resume) builds from events.jsonl.
fn replayed_view(run: &Path) -> RunView {
    let mut view = RunView::default();
    view.run_dir = Some(run.to_path_buf());
    for e in esr_ea::tui::read_event_log(&run.join("events.jsonl")) {
        view.apply(&e);
    }
    view
}

#[test]
fn a_tiny_search_reads_every_fitness_against_bicubic() {
    let dir = temp_dir("bicubic-search");
    let cfg = tiny_config(&dir);
    let run = dir.join("run");
    let out = run_search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--stop-after",
        "search",
    ]);
    let bicubic = bicubic_here(&cfg);

    // Computed once, kept in the run's state.
    let s = state(&run);
    let recorded = s.bicubic_psnr.expect("state.json records bicubic_psnr");
    assert!((recorded - bicubic).abs() < 1e-9, "{recorded} vs {bicubic}");

    // history.csv: the new last column is fitness − bicubic on every row.
    assert!(check_history(&run, bicubic) >= 4);

    // Headless lines: the start names the line to beat, each trained member
    // and each generation summary is read against it.
    assert!(
        out.contains(&format!("bicubic {bicubic:.3} dB on the validation images")),
        "{out}"
    );
    let mut member_lines = 0;
    for line in out
        .lines()
        .filter(|l| l.starts_with("[g") && l.contains("   PSNR "))
    {
        let psnr: f64 = line
            .split("   PSNR ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        let expected = format!("PSNR {psnr:.3} dB ({:+.2} dB vs bicubic)", psnr - bicubic);
        // Rounding of the printed PSNR may move the last digit by one.
        let close = [-0.001, 0.0, 0.001]
            .iter()
            .any(|d| line.contains(&format!("({:+.2} dB vs bicubic)", psnr + d - bicubic)));
        assert!(close, "{line}\nexpected like: {expected}");
        member_lines += 1;
    }
    assert!(member_lines >= 4, "{out}");
    let summaries: Vec<&str> = out.lines().filter(|l| l.contains(" done: best ")).collect();
    assert_eq!(summaries.len(), 2, "{out}");
    assert!(
        summaries
            .iter()
            .all(|l| l.matches("dB vs bicubic").count() == 2),
        "{summaries:?}"
    );
    assert!(
        out.lines()
            .filter(|l| l.starts_with("  elite "))
            .all(|l| l.contains("dB vs bicubic)")),
        "{out}"
    );
    assert!(out.contains("vs bic"), "final table column: {out}");

    // Three steps of training do not beat bicubic: the end says so, by how
    // much, and what to do next.
    let best = s.elites[0].fitness().unwrap();
    assert!(
        best < bicubic,
        "tiny training beat bicubic? {best} vs {bicubic}"
    );
    let sentence = format!("still {:.2} dB below bicubic", bicubic - best);
    let verdict = out
        .lines()
        .find(|l| l.contains(&sentence))
        .unwrap_or_else(|| panic!("no '{sentence}' in:\n{out}"));
    assert!(verdict.contains("fitness training is short"), "{verdict}");
    assert!(
        verdict.contains(&format!(
            "esr-ea train --config {}/config.yaml --model {}/export/1.safetensors",
            run.display(),
            run.display()
        )),
        "{verdict}"
    );
    assert!(verdict.contains("fully_train stage"), "{verdict}");

    // The event stream carries it: what attach and the dashboard see.
    let view = replayed_view(&run);
    assert_eq!(view.run.bicubic_psnr, Some(recorded));
    assert!(
        view.log.iter().any(|l| l.text.contains(&sentence)),
        "{:?}",
        view.log
    );

    // arch.txt: a comment names bicubic, each fitness line ends in its gap.
    let arch = std::fs::read_to_string(run.join("arch.txt")).unwrap();
    assert!(
        arch.lines()
            .next()
            .unwrap()
            .starts_with("# fitness: validation PSNR"),
        "{arch}"
    );
    assert!(arch.contains(&format!("{bicubic:.4} dB")), "{arch}");
    for line in arch.lines().filter(|l| l.starts_with("fitness: ")) {
        let fitness: f64 = line["fitness: ".len()..]
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let (_, comment) = line.split_once("  # ").expect(line);
        let over: f64 = comment.split(' ').next().unwrap().parse().unwrap();
        assert!((over - (fitness - bicubic)).abs() < 0.006, "{line}");
        assert!(comment.ends_with("dB vs bicubic"), "{line}");
    }

    // Export YAML: the fitness against bicubic as a comment; still YAML.
    let yaml = std::fs::read_to_string(run.join("export/1.yaml")).unwrap();
    let first = yaml.lines().next().unwrap();
    assert!(first.starts_with("# #1 (member "), "{yaml}");
    assert!(
        first.contains(&format!(
            "fitness {best:.3} dB after quick training, {:+.2} dB vs bicubic ({bicubic:.3} dB)",
            best - bicubic
        )),
        "{yaml}"
    );
    let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(parsed["rank"].as_u64(), Some(1));
    assert!((parsed["psnr"].as_f64().unwrap() - best).abs() < 1e-9);
    let all = std::fs::read_to_string(run.join("export/best.yaml")).unwrap();
    assert!(all.starts_with("# #1 (member "), "{all}");
    let list: Vec<serde_yaml::Value> = serde_yaml::from_str(&all).unwrap();
    assert_eq!(list.len(), 2);

    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run at `run` as killed after its first checkpoint (nothing evaluated),
/// its state recording `bicubic_psnr`.
fn checkpointed_run(cfg: &Path, run: &Path, bicubic_psnr: Option<f64>) {
    let loaded = Config::load(cfg).unwrap().config;
    let problem = Problem::new(
        loaded.search_space.clone(),
        loaded.policy.clone(),
        loaded.range.clone(),
    )
    .unwrap();
    let run_dir = RunDir::create(run).unwrap();
    run_dir.write_config(&loaded).unwrap();
    let mut search = Search::new(problem, loaded.seed).unwrap();
    assert_eq!(search.state.bicubic_psnr, None);
    search.state.bicubic_psnr = bicubic_psnr;
    run_dir.save_state(&search.state).unwrap();
}

#[test]
fn a_resumed_run_reads_its_recorded_bicubic_rather_than_measuring_again() {
    let dir = temp_dir("bicubic-kept");
    let cfg = tiny_config(&dir);
    let run = dir.join("run");
    // A value no measurement gives: seen only if the record is what is used.
    checkpointed_run(&cfg, &run, Some(12.5));
    let out = run_search(&["--resume", run.to_str().unwrap(), "--stop-after", "search"]);
    assert!(
        out.contains("bicubic 12.500 dB on the validation images"),
        "{out}"
    );
    assert_eq!(state(&run).bicubic_psnr, Some(12.5));
    assert!(check_history(&run, 12.5) >= 4);
    assert_eq!(replayed_view(&run).run.bicubic_psnr, Some(12.5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_saved_without_bicubic_scores_it_on_resume() {
    let dir = temp_dir("bicubic-resume");
    let cfg = tiny_config(&dir);
    // A run as an older esr-ea left it: config and first checkpoint, no
    // bicubic in state.json.
    let run = dir.join("run");
    checkpointed_run(&cfg, &run, None);
    let saved = std::fs::read_to_string(run.join("state.json")).unwrap();
    assert!(!saved.contains("bicubic"), "{saved}");
    let csv = std::fs::read_to_string(run.join("history.csv")).unwrap();
    assert!(csv.starts_with("generation,") && csv.trim_end().ends_with("psnr_over_bicubic"));

    let out = run_search(&["--resume", run.to_str().unwrap(), "--stop-after", "search"]);
    let bicubic = bicubic_here(&cfg);
    assert!(out.contains("resuming run"), "{out}");
    assert!(
        out.contains(&format!("bicubic {bicubic:.3} dB on the validation images")),
        "{out}"
    );
    let recorded = state(&run).bicubic_psnr.expect("scored on resume");
    assert!((recorded - bicubic).abs() < 1e-9);
    assert!(check_history(&run, bicubic) >= 4);
    // The resumed run's own start event tells viewers.
    let view = replayed_view(&run);
    assert!(view.run.resumed);
    assert_eq!(view.run.bicubic_psnr, Some(recorded));

    // `export` of a run saved without it scores it from the run's config.
    let mut saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    saved.as_object_mut().unwrap().remove("bicubic_psnr");
    std::fs::write(run.join("state.json"), saved.to_string()).unwrap();
    assert_eq!(state(&run).bicubic_psnr, None);
    let o = support::cli::esr_ea(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--top",
        "1",
        "--out",
        dir.join("again").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("dB vs bicubic)"), "{}", stdout(&o));
    let yaml = std::fs::read_to_string(dir.join("again/1.yaml")).unwrap();
    assert!(yaml.contains(&format!("({bicubic:.3} dB)")), "{yaml}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A misspelt key is said where the user looks: on stderr by `--check`, in
/// the run's log (events.jsonl, so the dashboard and `attach` show it) and
/// once in a headless run's output (issue 28, item 8).
#[test]
fn a_misspelt_key_is_in_the_runs_log() {
    let dir = support::temp_dir("bicubic-typo");
    let cfg = tiny_config(&dir);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            "  trainer:\n    steps: 3",
            "  trainer:\n    stepz: 9\n    steps: 3",
        )
        .replace("num_generation: 2", "num_generation: 1");
    std::fs::write(&cfg, text).unwrap();
    let o = esr_ea(&["search", "--check", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("nas.trainer.stepz"), "{}", stderr(&o));

    let run = dir.join("run");
    let o = headless_search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--stop-after",
        "search",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let both = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(both.matches("nas.trainer.stepz").count(), 1, "{both}");
    // Only the search ran: the pipeline is not called finished (item 13).
    assert!(
        both.contains("stopped after search (--stop-after)") && !both.contains("pipeline finished"),
        "{both}"
    );
    let view = replayed_view(&run);
    let log: Vec<String> = view.log.iter().map(|l| l.text.clone()).collect();
    assert!(
        log.iter().any(|l| l.contains("stopped after search"))
            && !log.iter().any(|l| l.contains("pipeline finished")),
        "{log:?}"
    );
    let events = std::fs::read_to_string(run.join("events.jsonl")).unwrap();
    let logged = events
        .lines()
        .find(|l| l.contains("nas.trainer.stepz"))
        .unwrap_or_else(|| panic!("not in the run's log:\n{events}"));
    assert!(logged.contains(r#""level":"warn""#), "{logged}");
    let _ = std::fs::remove_dir_all(&dir);
}
