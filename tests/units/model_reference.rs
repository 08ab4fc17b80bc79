//! The network against the reference implementation's test vectors
//! (`tests/data/vectors/esrn_mixed_x{2,3,4}.safetensors`, spec §8).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use esr_ea::model::{load_weights_into, model_from_tensors, varmap_params};
use esr_ea::space::{Arch, GeneList};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors");

/// The architecture of one vector file, from `esrn_vectors.json`.
fn arch_for(file: &str) -> (Arch, u64) {
    let text = std::fs::read_to_string(format!("{VECTORS}/esrn_vectors.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    let entry = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == file)
        .unwrap_or_else(|| panic!("{file} not listed in esrn_vectors.json"));
    let genes: Vec<String> = entry["arch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect();
    let arch = Arch {
        genes: GeneList::parse_args(&genes).unwrap(),
        g0: entry["G0"].as_u64().unwrap() as usize,
        scale: entry["scale"].as_u64().unwrap() as usize,
        bias: true,
    };
    (arch, entry["params"].as_u64().unwrap())
}

fn check_vectors(scale: usize) {
    let file = format!("esrn_mixed_x{scale}.safetensors");
    let (arch, params) = arch_for(&file);
    assert_eq!(arch.cost().params, params);
    let dev = Device::Cpu;
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(format!("{VECTORS}/{file}"), &dev).unwrap();
    let input = tensors.remove("input").unwrap();
    let expected = tensors.remove("expected_output").unwrap();
    let (model, varmap) = model_from_tensors(&arch, tensors, &dev).unwrap();
    assert_eq!(varmap_params(&varmap) as u64, params);
    let out = model.forward(&input).unwrap();
    assert_eq!(out.dims(), expected.dims());
    let diff: f32 = (out - &expected)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    eprintln!("x{scale}: max abs difference to the reference {diff:e}");
    assert!(diff <= 1e-4, "x{scale}: max abs difference {diff}");
}

#[test]
fn reference_vectors_x2() {
    check_vectors(2);
}

#[test]
fn reference_vectors_x3() {
    check_vectors(3);
}

#[test]
fn reference_vectors_x4() {
    check_vectors(4);
}

#[test]
fn reference_file_with_extra_tensors_names_the_first_unexpected_one() {
    let (arch, _) = arch_for("esrn_mixed_x2.safetensors");
    let err = load_weights_into(
        &arch,
        format!("{VECTORS}/esrn_mixed_x2.safetensors"),
        &Device::Cpu,
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tensor 'expected_output'") && err.contains("unexpected"),
        "{err}"
    );
}

#[test]
fn reference_weights_do_not_fit_another_scale() {
    let (mut arch, _) = arch_for("esrn_mixed_x2.safetensors");
    arch.scale = 4;
    let dev = Device::Cpu;
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(format!("{VECTORS}/esrn_mixed_x2.safetensors"), &dev)
            .unwrap();
    tensors.remove("input");
    tensors.remove("expected_output");
    let err = model_from_tensors(&arch, tensors, &dev)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor 'UPNet.0.bias' has shape [96], the architecture expects [128]"),
        "{err}"
    );
}
