//! A state.json that parses but makes no sense is refused in one line (it
//! used to panic, run "generation 100/3" or reuse ids), and `export` verifies
//! the weights it copies (it used to copy broken or foreign ones and exit 0).

use std::path::{Path, PathBuf};

use crate::support;

use support::cli::{esr_ea, headless_search, one_line_error, stderr};
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

/// A finished tiny search (a second or two).
fn finished_run(dir: &Path) -> PathBuf {
    tiny_dataset(dir, &["train/brick.png"]);
    let cfg = TinySearch {
        seed: 9,
        generations: 2,
        batch_size: 1,
        steps: 2,
        milestone: 1,
    }
    .write(dir, "tiny.yaml");
    let run = dir.join("run");
    let o = headless_search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    run
}

#[test]
fn nonsense_states_are_refused_in_one_line() {
    let dir = temp_dir("state");
    let run = finished_run(&dir);
    let run_s = run.to_str().unwrap();
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let cases: [(&str, serde_json::Value, &str); 3] = [
        ("population", serde_json::json!([]), "population is empty"),
        (
            "generation",
            serde_json::json!(99),
            "generation 99 is beyond",
        ),
        (
            "next_id",
            serde_json::json!(0),
            "next_id 0 is not above every member id",
        ),
    ];
    for (field, value, needle) in cases {
        let mut state = good.clone();
        state["finished"] = serde_json::json!(false);
        state[field] = value;
        std::fs::write(run.join("state.json"), state.to_string()).unwrap();
        let o = esr_ea(&["search", "--headless", "--resume", run_s]);
        one_line_error(&o, needle);
        assert!(stderr(&o).contains("state.json"), "{}", stderr(&o));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn export_verifies_the_weights_it_copies() {
    let dir = temp_dir("export");
    let run = finished_run(&dir);
    let run_s = run.to_str().unwrap();
    let o = esr_ea(&["export", "--run", run_s, "--top", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let best = state["elites"][0]["id"].as_u64().unwrap();
    let second = state["elites"][1]["id"].as_u64().unwrap();
    let model = |id: u64| run.join("models").join(format!("{id}.safetensors"));
    let original = std::fs::read(model(best)).unwrap();

    // Truncated.
    std::fs::write(model(best), &original[..original.len() / 2]).unwrap();
    one_line_error(&esr_ea(&["export", "--run", run_s]), "are broken");
    // Another member's network.
    std::fs::copy(model(second), model(best)).unwrap();
    one_line_error(
        &esr_ea(&["export", "--run", run_s]),
        &format!("does not hold #{best}'s network"),
    );
    // Missing.
    std::fs::remove_file(model(best)).unwrap();
    one_line_error(
        &esr_ea(&["export", "--run", run_s]),
        "missing or unreadable",
    );
    // Restored: fine again.
    std::fs::write(model(best), &original).unwrap();
    let o = esr_ea(&["export", "--run", run_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
