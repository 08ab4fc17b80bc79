//! The smaller points of the fault matrix: absurd sizes, backtraces in
//! errors, `upscale IN IN`, alpha and 16-bit input, a torn events.jsonl
//! line, stale temporary files, a run killed before its first checkpoint,
//! and the exit status of an interrupted search.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

use esr_ea::engine::{Event, RunDir};
use support::cli::{error_line, esr_ea, headless_search, stderr};
use support::temp_dir;
use support::tiny::{tiny_dataset, TinySearch};

fn tiny_config(dir: &Path, steps: usize) -> PathBuf {
    tiny_dataset(dir, &["train/chelsea.png"]);
    TinySearch {
        seed: 4,
        generations: 2,
        batch_size: 1,
        steps,
        milestone: 1,
    }
    .write(dir, &format!("tiny{steps}.yaml"))
}

#[test]
fn absurd_sizes_are_errors_not_aborts() {
    error_line(&esr_ea(&["inspect", "G_999999_99999_9999999"]), "absurd");
    error_line(
        &esr_ea(&["inspect", "--g0", "18446744073709551612", "G_4_16_24"]),
        "--g0",
    );
    error_line(
        &esr_ea(&["speed", "--threads", "100000", "--arch", "G_4_16_24"]),
        "--threads 100000",
    );
    error_line(
        &esr_ea(&[
            "speed",
            "--inference",
            "100000x100000",
            "--arch",
            "G_4_16_24",
        ]),
        "needs about",
    );
}

#[test]
fn candle_backtraces_never_reach_the_error_line() {
    // A real candle error, made while RUST_BACKTRACE asks for backtraces.
    std::env::set_var("RUST_BACKTRACE", "1");
    let t = candle_core::Tensor::zeros((2, 3), candle_core::DType::F32, &candle_core::Device::Cpu)
        .unwrap();
    let err = t.reshape((4, 4)).unwrap_err();
    let raw = format!("{err}");
    assert!(
        raw.lines().count() > 1,
        "candle gave no backtrace to strip: {raw}"
    );
    let line = esr_ea::cli::exit::error_line(&anyhow::Error::new(err).context("upscale"));
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with("upscale: ") && line.contains("shape"),
        "{line}"
    );
}

#[test]
fn upscale_refuses_its_input_as_output_and_says_what_rgb8_drops() {
    let dir = temp_dir("upscale");
    let arch = esr_ea::space::Arch {
        genes: esr_ea::space::GeneList::parse_args(&["S_2_8_8"]).unwrap(),
        g0: 8,
        scale: 2,
        bias: true,
    };
    let model = dir.join("m.safetensors");
    let net = esr_ea::model::Esrn::seeded(&arch, 1, &candle_core::Device::Cpu)
        .unwrap()
        .0;
    esr_ea::model::save_model(&net, &model).unwrap();
    let input = dir.join("in.png");
    image::RgbaImage::from_fn(9, 7, |x, y| {
        image::Rgba([x as u8 * 20, y as u8 * 30, 90, 128])
    })
    .save(&input)
    .unwrap();
    let before = std::fs::read(&input).unwrap();
    let (m, i) = (model.to_str().unwrap(), input.to_str().unwrap());
    error_line(
        &esr_ea(&["upscale", "--model", m, i, i]),
        "both the input and the output",
    );
    // Also through another spelling of the same path.
    let other = format!("{}/./in.png", dir.display());
    error_line(
        &esr_ea(&["upscale", "--model", m, i, &other]),
        "both the input and the output",
    );
    assert_eq!(std::fs::read(&input).unwrap(), before, "input untouched");

    let out = dir.join("out.png");
    let o = esr_ea(&["upscale", "--model", m, i, out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("alpha channel"), "{}", stderr(&o));
    let deep = dir.join("deep.png");
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(9, 7, |x, _| {
        image::Rgb([x as u16 * 3000, 0, 65535])
    })
    .save(&deep)
    .unwrap();
    let o = esr_ea(&[
        "upscale",
        "--model",
        m,
        deep.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("16-bit depth"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_last_event_line_does_not_swallow_the_next_event() {
    let dir = temp_dir("torn");
    let mut run = RunDir::create(&dir).unwrap();
    std::fs::write(
        dir.join("events.jsonl"),
        "{\"event\":\"paused\"}\n{\"event\":\"log\",\"lev",
    )
    .unwrap();
    run.append_event(&Event::Resumed).unwrap();
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let last = text.lines().last().unwrap();
    assert!(serde_json::from_str::<Event>(last).is_ok(), "{text}");
    // Viewers read both events; the torn line alone is reported and skipped.
    let events = esr_ea::tui::read_event_log(&dir.join("events.jsonl"));
    assert!(
        matches!(
            events.as_slice(),
            [Event::Paused, Event::Log { .. }, Event::Resumed]
        ),
        "{events:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn early_kill_stale_temp_files_and_interrupted_exit_status() {
    let dir = temp_dir("early");
    let cfg = tiny_config(&dir, 2);
    let straight = dir.join("straight");
    let o = headless_search(&[
        "--config",
        cfg.to_str().unwrap(),
        "--run-dir",
        straight.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Killed before the first state.json: only config.yaml (and models/) exist.
    let early = dir.join("early");
    std::fs::create_dir_all(early.join("models")).unwrap();
    std::fs::copy(straight.join("config.yaml"), early.join("config.yaml")).unwrap();
    // Temporary files of writers killed mid-write.
    std::fs::write(early.join(".state.json.tmp4242"), "{").unwrap();
    std::fs::write(early.join("models/.3.safetensors.tmp4242"), "x").unwrap();
    let o = esr_ea(&["search", "--headless", "--resume", early.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("removed 2 temporary files"),
        "{}",
        stderr(&o)
    );
    assert!(!early.join(".state.json.tmp4242").exists());
    assert!(!early.join("models/.3.safetensors.tmp4242").exists());
    let elites = |run: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap())
                .unwrap();
        v["elites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["id"].clone(), m["genes"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(elites(&early), elites(&straight));

    // SIGTERM: checkpointed, resumable, and a status of its own (3), not 0.
    let cfg = tiny_config(&dir, 100_000);
    let long = dir.join("long");
    let child = Command::new(env!("CARGO_BIN_EXE_esr-ea"))
        .args([
            "search",
            "--headless",
            "--config",
            cfg.to_str().unwrap(),
            "--run-dir",
            long.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(long.join("events.jsonl"))
        .unwrap_or_default()
        .contains("\"progress\"")
    {
        assert!(
            Instant::now() < deadline,
            "the search never started training"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}
