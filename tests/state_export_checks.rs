//! A state.json that parses but makes no sense is refused in one line (it
//! used to panic, run "generation 100/3" or reuse ids), and `export` verifies
//! the weights it copies (it used to copy broken or foreign ones and exit 0).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("esr-ea-checks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A finished tiny search (a second or two).
fn finished_run(dir: &Path) -> PathBuf {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    for (split, src, side) in [
        ("train", "train/brick.png", 48u32),
        ("val", "val/coffee.png", 24u32),
    ] {
        let out = dir.join(split);
        std::fs::create_dir_all(&out).unwrap();
        let img = image::open(assets.join(src)).unwrap().to_rgb8();
        image::imageops::crop_imm(&img, 40, 40, side, side)
            .to_image()
            .save(out.join("0.png"))
            .unwrap();
    }
    let cfg = dir.join("tiny.yaml");
    std::fs::write(
        &cfg,
        r#"
seed: 9
nas:
  search_space:
    esrbody: {block_type: [S, G, C], conv_num: [4], growth_rate: [8, 16], type_prob: [1, 1, 1],
              conv_prob: [1], growth_prob: [1, 1], G0: 8, scale: 2}
  search_algorithm:
    policy: {num_generation: 2, num_individual: 4, num_elitism: 2, mutation_rate: 0.1}
    range: {node_num: 10, min_active: 4, max_params: 60000, min_params: 20000}
  dataset:
    train: {root_HR: train, upscale: 2, crop: 8, batch_size: 1}
    test: {root_HR: val, upscale: 2}
  trainer:
    steps: 2
    optimizer: {type: Adam, params: {lr: 0.001}}
    lr_scheduler: {type: MultiStepLR, milestones: [1], gamma: 0.5, milestones_unit: steps}
    loss: {type: L1Loss}
"#,
    )
    .unwrap();
    let run = dir.join("run");
    let o = esr_ea(&[
        "search",
        "--headless",
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    run
}

fn esr_ea(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn one_line_error(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
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
