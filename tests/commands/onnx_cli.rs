//! `esr-ea onnx`, `esr-ea latency` and `esr-ea export --onnx --latency`
//! through the binary: the files they write run in tract and match candle.

use std::path::Path;

use crate::support;

use candle_core::{Device, Tensor};
use esr_ea::model::{load_model, save_model, Esrn};
use esr_ea::space::{Arch, GeneList};
use support::cli::esr_ea;
use support::temp_dir;
use support::tiny::photo_crops;
use tract_onnx::prelude::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// max |candle − tract| for the ONNX file at `onnx` against `model` on a
/// 1x3x7x5 input (odd: exercises the in-graph padding when a C block exists).
fn max_difference(model: &Esrn, onnx: &Path) -> f32 {
    let (h, w) = (7, 5);
    let v: Vec<f32> = (0..3 * h * w)
        .map(|i| (i as f32 * 0.13).cos() * 0.5 + 0.5)
        .collect();
    let x = Tensor::from_vec(v.clone(), (1, 3, h, w), &Device::Cpu).unwrap();
    let want: Vec<f32> = model
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let plan = tract_onnx::onnx()
        .model_for_path(onnx)
        .unwrap()
        .with_input_fact(0, f32::fact([1, 3, h, w]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::ArrayD::from_shape_vec(vec![1, 3, h, w], v).unwrap();
    let out = plan
        .run(tvec!(tract_onnx::prelude::Tensor::from(input).into()))
        .unwrap();
    let got = out[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(got.len(), want.len());
    want.iter()
        .zip(got.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

#[test]
fn onnx_command_writes_a_file_that_matches_candle() {
    let dir = temp_dir("cmd");
    let arch = Arch {
        genes: GeneList::parse_args(&["G_2_8_8 C_2_8_12"]).unwrap(),
        g0: 8,
        scale: 3,
        bias: true,
    };
    let (model, _) = Esrn::seeded(&arch, 5, &Device::Cpu).unwrap();
    let weights = dir.join("m.safetensors");
    save_model(&model, &weights).unwrap();
    let onnx = dir.join("m.onnx");
    let out = esr_ea(&["onnx", weights.to_str().unwrap(), onnx.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("opset 17"),
        "{}",
        text(&out.stdout)
    );
    assert!(max_difference(&model, &onnx) <= 1e-4);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let out = esr_ea(&[
        "latency",
        weights.to_str().unwrap(),
        "--size",
        "9x5",
        "--frames",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains("candle 9x5, 1 thread(s), 2 frames: median"),
        "{line}"
    );
    assert!(line.contains("min") && line.contains("max"), "{line}");
}

#[test]
fn bad_arguments_are_one_clear_line() {
    let dir = temp_dir("bad");
    let missing = dir.join("none.safetensors");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "onnx".into(),
                missing.display().to_string(),
                dir.join("x.txt").display().to_string(),
            ],
            "must end in .onnx",
        ),
        (
            vec![
                "onnx".into(),
                missing.display().to_string(),
                dir.join("x.onnx").display().to_string(),
            ],
            "none.safetensors",
        ),
        (
            vec![
                "latency".into(),
                missing.display().to_string(),
                "--size".into(),
                "640by360".into(),
            ],
            "640by360",
        ),
        (
            vec![
                "latency".into(),
                "m.onnx".into(),
                "--runtime".into(),
                "candle".into(),
            ],
            "use --runtime onnxruntime",
        ),
        (
            vec![
                "latency".into(),
                missing.display().to_string(),
                "--threads".into(),
                "0".into(),
            ],
            "--threads 0",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = esr_ea(&args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn export_writes_onnx_and_latency_beside_each_model() {
    let dir = temp_dir("export");
    photo_crops(&dir, &["train/chelsea.png"], 30, 32, 16);
    let config = r#"
seed: 4
nas:
  search_space:
    esrbody: {block_type: [S, G, C], conv_num: [4], growth_rate: [8], type_prob: [1, 1, 1],
              conv_prob: [1], growth_prob: [1], G0: 8, scale: 2}
  search_algorithm:
    policy: {num_generation: 1, num_individual: 2, num_elitism: 1, mutation_rate: 0.1}
    range: {node_num: 10, min_active: 4, max_params: 60000, min_params: 10000}
  dataset:
    train: {root_HR: train, upscale: 2, crop: 8, batch_size: 2}
    test: {root_HR: val, upscale: 2}
  trainer:
    steps: 2
    optimizer: {type: Adam, params: {lr: 0.001}}
    lr_scheduler: {type: MultiStepLR, milestones: [1], gamma: 0.5, milestones_unit: steps}
    loss: {type: L1Loss}
"#;
    std::fs::write(dir.join("tiny.yaml"), config).unwrap();
    let run = dir.join("run");
    let out = esr_ea(&[
        "search",
        "--config",
        dir.join("tiny.yaml").to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--headless",
        // The search's elites are what is exported; the full training is
        // the pipeline's tests' business.
        "--stop-after",
        "search",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export = dir.join("export");
    let out = esr_ea(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--top",
        "1",
        "--out",
        export.to_str().unwrap(),
        "--onnx",
        "--latency",
        "9x5",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = std::fs::read_to_string(export.join("1.yaml")).unwrap();
    assert!(yaml.contains("onnx: 1.onnx"), "{yaml}");
    assert!(
        yaml.contains("latency:") && yaml.contains("median_ms:"),
        "{yaml}"
    );
    assert!(
        yaml.contains("runtime: candle") && yaml.contains("threads: 1"),
        "{yaml}"
    );
    let (model, _) = load_model(export.join("1.safetensors"), &Device::Cpu).unwrap();
    assert!(max_difference(&model, &export.join("1.onnx")) <= 1e-4);
}
