//! The exported ONNX graph computes what candle computes: tract (an ONNX
//! runtime nobody here wrote) runs it on S/G/C-mixed networks at x2, x3 and
//! x4, with and without biases, at even and odd sizes, within 1e-4.
//!
//! `write_cases_for_onnxruntime` (ignored) writes the same matrix to files
//! for `scripts/onnx-check.sh`, which checks it with `onnx.checker` and
//! onnxruntime.

use candle_core::{Device, Tensor};
use esr_ea::model::Esrn;
use esr_ea::onnx::{pb, to_onnx_bytes};
use esr_ea::space::{Arch, GeneList};
use prost::Message;
use tract_onnx::prelude::*;

/// Largest allowed |candle − runtime| per output value.
const TOLERANCE: f32 = 1e-4;

/// One verification case: a network and the input sizes it runs at.
struct Case {
    name: &'static str,
    genes: &'static str,
    scale: usize,
    bias: bool,
    /// (batch, height, width) inputs.
    sizes: &'static [(usize, usize, usize)],
}

/// The matrix: every block kind, every scale, biases on and off, even and
/// odd heights/widths, batch > 1, and a network without C block at odd size
/// (no padding in its graph).
const CASES: &[Case] = &[
    Case {
        name: "sgc_x2_bias",
        genes: "S_2_8_12 G_3_8_8 C_2_8_16",
        scale: 2,
        bias: true,
        sizes: &[(1, 6, 8), (1, 5, 7), (2, 4, 3)],
    },
    Case {
        name: "gcs_x3_nobias",
        genes: "G_2_8_12 C_1_8_8 S_1_8_8",
        scale: 3,
        bias: false,
        sizes: &[(1, 4, 6), (1, 7, 5)],
    },
    Case {
        name: "csg_x4_bias",
        genes: "C_3_8_12 S_2_8_8 G_4_8_16",
        scale: 4,
        bias: true,
        sizes: &[(1, 6, 4), (1, 3, 5)],
    },
    Case {
        name: "sg_x2_nobias",
        genes: "S_3_8_8 G_2_8_12",
        scale: 2,
        bias: false,
        sizes: &[(1, 5, 6), (1, 4, 4)],
    },
];

fn network(case: &Case) -> Esrn {
    let arch = Arch {
        genes: GeneList::parse_args(&[case.genes]).unwrap(),
        g0: 8,
        scale: case.scale,
        bias: case.bias,
    };
    Esrn::seeded(&arch, 11, &Device::Cpu).unwrap().0
}

/// A deterministic input in 0..1 with structure in both directions.
fn input(b: usize, h: usize, w: usize) -> Tensor {
    let v: Vec<f32> = (0..b * 3 * h * w)
        .map(|i| 0.5 + 0.45 * ((i as f32) * 0.37).sin())
        .collect();
    Tensor::from_vec(v, (b, 3, h, w), &Device::Cpu).unwrap()
}

/// Runs the ONNX bytes with tract at one concrete input shape.
fn run_tract(bytes: &[u8], x: &Tensor) -> (Vec<usize>, Vec<f32>) {
    let dims = x.dims().to_vec();
    let data: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact(&dims).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::ArrayD::from_shape_vec(dims, data).unwrap();
    let out = plan
        .run(tvec!(tract_onnx::prelude::Tensor::from(input).into()))
        .unwrap();
    let view = out[0].to_plain_array_view::<f32>().unwrap();
    (view.shape().to_vec(), view.iter().copied().collect())
}

#[test]
fn tract_matches_candle_on_the_matrix() {
    for case in CASES {
        let net = network(case);
        let bytes = to_onnx_bytes(&net).unwrap();
        for &(b, h, w) in case.sizes {
            let x = input(b, h, w);
            let expected = net.forward(&x).unwrap();
            let want: Vec<f32> = expected.flatten_all().unwrap().to_vec1().unwrap();
            let (shape, got) = run_tract(&bytes, &x);
            assert_eq!(
                shape,
                vec![b, 3, case.scale * h, case.scale * w],
                "{} at {b}x3x{h}x{w}",
                case.name
            );
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "{} {b}x3x{h}x{w}: max |candle - tract| = {worst:.2e}",
                case.name
            );
            assert!(
                worst <= TOLERANCE,
                "{} at {b}x3x{h}x{w}: max |candle - tract| = {worst:e}",
                case.name
            );
            // Not a trivially constant output: the comparison means something.
            let spread = want.iter().fold(f32::MIN, |m, v| m.max(*v))
                - want.iter().fold(f32::MAX, |m, v| m.min(*v));
            assert!(spread > 1e-3, "{}: output is flat", case.name);
        }
    }
}

#[test]
fn one_symbolic_plan_runs_every_size() {
    // Batch, height and width stay symbolic in tract: one optimised plan
    // serves all the case's sizes, as a deployed file must.
    let case = &CASES[0];
    let net = network(case);
    let bytes = to_onnx_bytes(&net).unwrap();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    for &(b, h, w) in case.sizes {
        let x = input(b, h, w);
        let want: Vec<f32> = net
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let data: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let array = tract_ndarray::ArrayD::from_shape_vec(vec![b, 3, h, w], data).unwrap();
        let out = plan
            .run(tvec!(tract_onnx::prelude::Tensor::from(array).into()))
            .unwrap();
        let got = out[0].to_plain_array_view::<f32>().unwrap();
        assert_eq!(got.shape(), &[b, 3, case.scale * h, case.scale * w]);
        let worst = want
            .iter()
            .zip(got.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= TOLERANCE, "{b}x3x{h}x{w}: {worst:e}");
    }
}

#[test]
fn a_wrong_weight_is_caught_by_the_comparison() {
    // One doubled inner weight tensor must show above the tolerance, or the
    // matrix could pass on outputs too small to compare.
    let case = &CASES[0];
    let net = network(case);
    let mut tensors = net.named_tensors();
    let (_, w) = tensors
        .iter_mut()
        .find(|(n, _)| n == "ERDBLayer.ERBD.1.convs.2.conv.0.weight")
        .unwrap();
    *w = (w.clone() * 2.0).unwrap();
    let proto = esr_ea::onnx::model_proto(net.arch(), &tensors).unwrap();
    let x = input(1, 6, 8);
    let want: Vec<f32> = net
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let (_, got) = run_tract(&proto.encode_to_vec(), &x);
    let worst = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst > 10.0 * TOLERANCE,
        "a doubled weight went unnoticed: {worst:e}"
    );
}

#[test]
fn model_is_self_describing_with_dynamic_sizes() {
    let net = network(&CASES[1]);
    let model = pb::ModelProto::decode(&to_onnx_bytes(&net).unwrap()[..]).unwrap();
    assert_eq!(model.opset_import[0].version, Some(17));
    let meta: std::collections::HashMap<_, _> = model
        .metadata_props
        .iter()
        .map(|p| (p.key().to_string(), p.value().to_string()))
        .collect();
    assert_eq!(meta["genes"], "G_2_8_12 C_1_8_8 S_1_8_8");
    assert_eq!(meta["scale"], "3");
    assert_eq!(meta["g0"], "8");
    assert_eq!(meta["bias"], "false");
    assert_eq!(meta["esr_ea_version"], env!("CARGO_PKG_VERSION"));
    let graph = model.graph.unwrap();
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.output.len(), 1);
    let Some(pb::type_proto::Value::TensorType(t)) =
        graph.input[0].r#type.as_ref().unwrap().value.as_ref()
    else {
        panic!("input is not a tensor");
    };
    let dims: Vec<String> = t
        .shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| format!("{:?}", d.value))
        .collect();
    assert!(dims[0].contains("DimParam") && dims[2].contains("DimParam"));
    assert!(dims[3].contains("DimParam") && dims[1].contains("DimValue(3)"));
    // Every weight is stored once, as f32 (the C block's shared conv too).
    let params: usize = graph
        .initializer
        .iter()
        .filter(|t| t.data_type == Some(pb::tensor_proto::DataType::Float as i32))
        .map(|t| t.dims.iter().product::<i64>() as usize)
        .sum();
    assert_eq!(params, net.num_params());
    let ops: std::collections::BTreeSet<_> =
        graph.node.iter().map(|n| n.op_type().to_string()).collect();
    for op in [
        "Conv",
        "Relu",
        "Concat",
        "AveragePool",
        "Add",
        "DepthToSpace",
        "Pad",
        "Transpose",
    ] {
        assert!(ops.contains(op), "{op} missing from {ops:?}");
    }
}

/// Writes `<dir>/<case>/model.onnx` and, per size, `<b>x<h>x<w>.input.f32`
/// and `.expected.f32` (raw little-endian f32, NCHW) plus `cases.txt`
/// listing `case b h w scale` lines, for `scripts/onnx-check.sh`.
#[test]
#[ignore = "writes files for scripts/onnx-check.sh (set ESR_EA_ONNX_CASES=DIR)"]
fn write_cases_for_onnxruntime() {
    let dir = std::path::PathBuf::from(
        std::env::var("ESR_EA_ONNX_CASES").expect("set ESR_EA_ONNX_CASES to the output folder"),
    );
    let mut listing = String::new();
    for case in CASES {
        let net = network(case);
        let case_dir = dir.join(case.name);
        std::fs::create_dir_all(&case_dir).unwrap();
        esr_ea::onnx::write_onnx(&net, &case_dir.join("model.onnx")).unwrap();
        for &(b, h, w) in case.sizes {
            let x = input(b, h, w);
            let y = net.forward(&x).unwrap();
            let raw = |t: &Tensor| -> Vec<u8> {
                let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
                v.iter().flat_map(|f| f.to_le_bytes()).collect()
            };
            let stem = format!("{b}x{h}x{w}");
            std::fs::write(case_dir.join(format!("{stem}.input.f32")), raw(&x)).unwrap();
            std::fs::write(case_dir.join(format!("{stem}.expected.f32")), raw(&y)).unwrap();
            listing.push_str(&format!("{} {b} {h} {w} {}\n", case.name, case.scale));
        }
    }
    std::fs::write(dir.join("cases.txt"), listing).unwrap();
}
