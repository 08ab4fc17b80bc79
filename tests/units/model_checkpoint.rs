//! Self-describing checkpoints: round trip, atomic writes, clear mismatch errors.

use crate::support;

use candle_core::{Device, Tensor};
use esr_ea::model::{
    load_model, load_weights_into, save_model, varmap_params, CheckpointError, Esrn,
};
use esr_ea::space::{Arch, GeneList};
use support::temp_dir as scratch;

fn arch(genes: &str, scale: usize, bias: bool) -> Arch {
    Arch {
        genes: GeneList::parse_args(&[genes]).unwrap(),
        g0: 8,
        scale,
        bias,
    }
}

fn input() -> Tensor {
    let v: Vec<f32> = (0..3 * 6 * 8)
        .map(|i| ((i * 37) % 101) as f32 / 100.0)
        .collect();
    Tensor::from_vec(v, (1, 3, 6, 8), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn load_err(result: Result<(Esrn, candle_nn::VarMap), CheckpointError>) -> String {
    match result {
        Ok(_) => panic!("loading should have failed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trip_restores_architecture_and_outputs() {
    let dir = scratch("roundtrip");
    for (scale, bias) in [(2, true), (3, false), (4, true)] {
        let a = arch("S_4_8_16 G_4_8_8 C_4_8_16", scale, bias);
        let (model, _) = Esrn::seeded(&a, 11, &Device::Cpu).unwrap();
        let path = dir.join(format!("m{scale}.safetensors"));
        save_model(&model, &path).unwrap();
        let (loaded, varmap) = load_model(&path, &Device::Cpu).unwrap();
        assert_eq!(loaded.arch(), &a);
        assert_eq!(varmap_params(&varmap) as u64, a.cost().params);
        let x = input();
        assert_eq!(
            max_diff(&model.forward(&x).unwrap(), &loaded.forward(&x).unwrap()),
            0.0
        );
    }
    // Only the checkpoints remain: no temporary files.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["m2.safetensors", "m3.safetensors", "m4.safetensors"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn saving_replaces_an_existing_file() {
    let dir = scratch("replace");
    let path = dir.join("m.safetensors");
    let a = arch("S_4_8_8", 2, true);
    save_model(&Esrn::seeded(&a, 1, &Device::Cpu).unwrap().0, &path).unwrap();
    let (second, _) = Esrn::seeded(&a, 2, &Device::Cpu).unwrap();
    save_model(&second, &path).unwrap();
    let (loaded, _) = load_model(&path, &Device::Cpu).unwrap();
    let x = input();
    assert_eq!(
        max_diff(&second.forward(&x).unwrap(), &loaded.forward(&x).unwrap()),
        0.0
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn seeded_init_is_deterministic() {
    let a = arch("S_4_8_16 C_4_8_16", 2, true);
    let (m1, _) = Esrn::seeded(&a, 5, &Device::Cpu).unwrap();
    let (m2, _) = Esrn::seeded(&a, 5, &Device::Cpu).unwrap();
    let (m3, _) = Esrn::seeded(&a, 6, &Device::Cpu).unwrap();
    for ((n1, t1), (_, t2)) in m1.named_tensors().iter().zip(m2.named_tensors().iter()) {
        assert_eq!(max_diff(t1, t2), 0.0, "{n1}");
    }
    let x = input();
    assert!(max_diff(&m1.forward(&x).unwrap(), &m3.forward(&x).unwrap()) > 0.0);
}

#[test]
fn mismatches_name_the_first_offending_tensor() {
    let dir = scratch("mismatch");
    let path = dir.join("m.safetensors");
    let a = arch("S_4_8_16 G_4_8_8", 2, true);
    save_model(&Esrn::seeded(&a, 1, &Device::Cpu).unwrap().0, &path).unwrap();
    let dev = Device::Cpu;

    // A longer network: its third block's tensors are missing from the file.
    let err = load_err(load_weights_into(
        &arch("S_4_8_16 G_4_8_8 S_4_8_8", 2, true),
        &path,
        &dev,
    ));
    assert!(
        err.contains("tensor 'ERDBLayer.ERBD.2.Convs.0.0.bias' is missing"),
        "{err}"
    );

    // Without biases every bias is unexpected; the first by name is reported.
    let err = load_err(load_weights_into(
        &arch("S_4_8_16 G_4_8_8", 2, false),
        &path,
        &dev,
    ));
    assert!(
        err.contains("tensor 'ERDBLayer.ERBD.0.Convs.0.0.bias' (shape [8]) is unexpected"),
        "{err}"
    );

    // Same names, different width.
    let err = load_err(load_weights_into(
        &arch("S_4_8_24 G_4_8_8", 2, true),
        &path,
        &dev,
    ));
    assert!(
        err.contains(
            "tensor 'ERDBLayer.ERBD.0.OutConv.bias' has shape [16], the architecture expects [24]"
        ),
        "{err}"
    );
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreadable_or_foreign_files_are_clear_errors() {
    let dir = scratch("foreign");
    let dev = Device::Cpu;
    let missing = dir.join("nope.safetensors");
    let err = load_err(load_model(&missing, &dev));
    assert!(err.contains("nope.safetensors: read failed"), "{err}");

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
    let err = load_err(load_model(&garbage, &dev));
    assert!(err.contains("not a valid safetensors file"), "{err}");

    let reference = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/vectors/esrn_mixed_x2.safetensors"
    );
    let err = load_err(load_model(reference, &dev));
    assert!(err.contains("metadata '__metadata__' is missing"), "{err}");

    // A checkpoint from a future format version.
    let a = arch("S_4_8_8", 2, true);
    let (model, _) = Esrn::seeded(&a, 1, &dev).unwrap();
    let tensors = model.named_tensors();
    let meta = std::collections::HashMap::from([
        ("format".to_string(), "esr-ea/esrn".to_string()),
        ("format_version".to_string(), "99".to_string()),
    ]);
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta)).unwrap();
    let future = dir.join("future.safetensors");
    std::fs::write(&future, bytes).unwrap();
    let err = load_err(load_model(&future, &dev));
    assert!(
        err.contains("metadata 'format_version' is '99'; this build reads version 1"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
