//! The binary as a user runs it: exit codes, one-line errors, files written.

use crate::support;

use std::path::Path;

use support::cli::{esr_ea, stderr, stdout};
use support::temp_dir;

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "search", "inspect", "train", "bench", "upscale", "export", "control",
    ] {
        let o = esr_ea(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage"), "{sub}");
    }
}

#[test]
fn inspect_json_gives_exact_figures() {
    let o = esr_ea(&["inspect", "--json", "G_8_16_24", "C_8_16_16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "params",
        "multi_adds",
        "reference_estimate_params",
        "blocks",
    ] {
        assert!(!v[key].is_null(), "{key} missing");
    }
    assert_eq!(v["blocks"].as_array().unwrap().len(), 2);
    // The Python list form the reference prints gives the same answer.
    let o2 = esr_ea(&["inspect", "--json", "['G_8_16_24', 'C_8_16_16']"]);
    assert_eq!(o.stdout, o2.stdout);
}

#[test]
fn bad_input_is_one_clear_line_and_a_failure() {
    let cases: [(&[&str], &str); 4] = [
        (&["inspect", "G_8_16"], "expected 4 fields"),
        (&["inspect", "--g0", "30", "S_4_16_16"], "multiple of 4"),
        (
            &["search", "--config", "/no/such/file.yaml", "--check"],
            "/no/such/file.yaml",
        ),
        (
            &[
                "upscale",
                "--model",
                "/no/model.safetensors",
                "a.png",
                "b.png",
            ],
            "/no/model.safetensors",
        ),
    ];
    for (args, needle) in cases {
        let o = esr_ea(args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        // The cause once, not repeated by the error chain (issue 28, item 13).
        assert!(err.matches("(os error").count() <= 1, "{args:?}: {err}");
    }
}

#[test]
fn train_refuses_zero_steps_or_epochs_as_the_config_does() {
    let dir = temp_dir("train-zero");
    for flag in ["--steps", "--epochs"] {
        let out = dir.join(flag.trim_start_matches('-'));
        let o = esr_ea(&[
            "train",
            "--arch",
            "S_4_16_16",
            flag,
            "0",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!o.status.success(), "{flag} 0 was accepted");
        let err = stderr(&o);
        assert!(err.contains(flag) && err.contains("1 or more"), "{err}");
        assert!(
            !out.join("model.safetensors").exists(),
            "{flag} 0 wrote a model"
        );
    }
}

#[test]
fn a_resumed_search_refuses_a_new_seed() {
    let o = esr_ea(&[
        "search",
        "--resume",
        "/no/such/run",
        "--seed",
        "5",
        "--check",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("--seed") && err.contains("--resume"), "{err}");
}

#[test]
fn search_check_prints_the_plan_for_every_shipped_config() {
    let root = env!("CARGO_MANIFEST_DIR");
    for cfg in [
        "configs/esr_ea.yaml",
        "configs/quick.yaml",
        "configs/vega_esr_ea.yml",
    ] {
        let o = esr_ea(&["search", "--config", &format!("{root}/{cfg}"), "--check"]);
        assert!(o.status.success(), "{cfg}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("generations x"), "{cfg}: {out}");
        assert!(out.contains("reachable:"), "{cfg}: {out}");
        assert!(out.contains("choice table:"), "{cfg}: {out}");
        // What validating each member costs beside its training.
        assert!(
            out.contains("validation per fitness: 2 images"),
            "{cfg}: {out}"
        );
        assert!(out.contains("of a member's time"), "{cfg}: {out}");
    }
    // No config: the embedded default.
    let o = esr_ea(&["search", "--check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("embedded configs/quick.yaml"));
}

#[test]
fn an_infeasible_budget_stops_at_start_with_the_reachable_range() {
    let dir = temp_dir("budget");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quick.yaml"))
        .unwrap()
        .replace("max_params: 150000", "max_params: 20000")
        .replace("min_params: 25000", "min_params: 10000")
        .replace("../assets", concat!(env!("CARGO_MANIFEST_DIR"), "/assets"));
    let cfg = dir.join("tight.yaml");
    std::fs::write(&cfg, text).unwrap();
    let o = esr_ea(&["search", "--config", cfg.to_str().unwrap(), "--check"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("max_params = 20000 is below the smallest network"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn write_png(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    img.save(path).unwrap();
}

#[test]
fn train_then_upscale_an_odd_image_then_bench() {
    let dir = temp_dir("train");
    let out = dir.join("model");
    let o = esr_ea(&[
        "train",
        "--arch",
        "C_4_8_8 S_4_8_8",
        "--steps",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("bicubic"), "{}", stdout(&o));
    let model = out.join("model.safetensors");
    assert!(
        model.is_file() && out.join("trainer.json").is_file() && out.join("score.json").is_file()
    );
    // Training again into the same folder without --resume is refused.
    let o = esr_ea(&[
        "train",
        "--arch",
        "S_4_8_8",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--resume"),
        "{}",
        stderr(&o)
    );
    // Resume extends it.
    let o = esr_ea(&[
        "train",
        "--resume",
        "--steps",
        "6",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("from step 4"), "{}", stdout(&o));

    let input = dir.join("odd.png");
    write_png(&input, 21, 13);
    let output = dir.join("odd_x2.jpg");
    let o = esr_ea(&[
        "upscale",
        "--model",
        model.to_str().unwrap(),
        input.to_str().unwrap(),
        output.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let up = image::open(&output).unwrap();
    assert_eq!((up.width(), up.height()), (42, 26));

    let data = dir.join("set");
    std::fs::create_dir_all(&data).unwrap();
    write_png(&data.join("a.png"), 24, 24);
    write_png(&data.join("b.png"), 36, 24);
    let o = esr_ea(&[
        "bench",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sets = v["datasets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "bicubic row + model row");
    assert_eq!(sets[0]["method"], "bicubic");
    assert_eq!(v["images"].as_array().unwrap().len(), 4);
    let o = esr_ea(&[
        "bench",
        "--model",
        "bicubic",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--scale"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The seed document's 17 blocks (spec §8; 520,595 params at G0 32, x2).
const SEED_ARCH: &str = "G_8_16_24 C_8_16_16 G_4_16_24 G_8_16_16 S_4_24_32 C_8_16_48 S_4_16_24 \
G_6_16_24 G_8_16_16 C_8_16_24 S_8_16_16 S_8_16_24 S_8_16_32 S_6_16_16 G_6_16_64 G_8_16_16 S_8_16_32";

/// Paper size: the seed document's network at `configs/esr_ea.yaml`'s
/// settings (batch 16 x 64x64 patches, the embedded images) through every
/// command a user gives a model, each at its default memory budget.
#[test]
fn the_seed_documents_network_runs_through_every_command() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = temp_dir("seed-net");
    let out = dir.join("m");
    let cfg = format!("{root}/configs/esr_ea.yaml");
    let mut args = vec!["train", "--config", &cfg, "--steps", "1", "--arch"];
    args.extend(SEED_ARCH.split(' '));
    let out_s = out.to_str().unwrap();
    args.extend(["--out", out_s]);
    let o = esr_ea(&args);
    assert!(o.status.success(), "train: {}", stderr(&o));
    assert!(stdout(&o).contains("520,595 params"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("validation (2 images)"),
        "{}",
        stdout(&o)
    );
    let model = out.join("model.safetensors");
    let model_s = model.to_str().unwrap();

    let val = format!("{root}/assets/val");
    let o = esr_ea(&["bench", "--model", model_s, "--data", &val, "--json"]);
    assert!(o.status.success(), "bench: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["images"].as_array().unwrap().len(),
        4,
        "2 images x (bicubic, model)"
    );

    // A held photo (216x144) fits the default budget: one pass, no tiles.
    let photo = format!("{root}/assets/train/chelsea.png");
    let up = dir.join("chelsea_x2.png");
    let o = esr_ea(&["upscale", "--model", model_s, &photo, up.to_str().unwrap()]);
    assert!(o.status.success(), "upscale: {}", stderr(&o));
    assert!(!stderr(&o).contains("tiles"), "{}", stderr(&o));
    let img = image::open(&up).unwrap();
    assert_eq!((img.width(), img.height()), (432, 288));

    let onnx = dir.join("m.onnx");
    let o = esr_ea(&["onnx", model_s, onnx.to_str().unwrap()]);
    assert!(o.status.success(), "onnx: {}", stderr(&o));
    assert!(std::fs::metadata(&onnx).unwrap().len() > 520_595 * 4);

    let o = esr_ea(&["latency", model_s, "--size", "64x48", "--frames", "1"]);
    assert!(o.status.success(), "latency: {}", stderr(&o));

    let mut args = vec![
        "speed",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--inference",
        "none",
    ];
    args.push("--json");
    args.push("--arch");
    args.extend(SEED_ARCH.split(' '));
    let o = esr_ea(&args);
    assert!(o.status.success(), "speed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["params"], 520_595);
    assert!(v["step_ms"]["median"].as_f64().unwrap() > 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
