//! Builds the ONNX graph of an ESRN network from its architecture and
//! weights, mirroring `model::esrn` and `model::blocks` op for op.
//!
//! Ops per block kind (spec §4):
//! - S: Conv 3x3 + Relu, Concat, Conv 1x1 (shrink), per layer;
//! - G: channel shuffle (Reshape, Transpose, Reshape to the input's Shape),
//!   grouped Conv 3x3 + Relu, Concat, then Conv 1x1 (LFF);
//! - C: AveragePool 2x2/2, Conv 3x3 + Relu three times with shared weights,
//!   Concat, Conv 1x1, and DepthToSpace (CRD) by 2 before the last Conv 1x1;
//! - every block: an optional Conv 1x1 in/out projection and the residual Add.
//!
//! Around them: Conv (shallow features), Concat + Conv 1x1 + Conv 3x3 + Add
//! (global fusion), Conv + DepthToSpace (CRD) steps (upsampler). When a C
//! block is present the body needs even sizes: the input is padded by one
//! replicated row and column (Pad, mode edge), sliced to the even size
//! (Shape, Slice, Add, Div, Mul) and the output sliced back to exactly
//! `scale·H × scale·W`, which is what `Esrn::forward` does.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::space::cost::group_conv_groups;
use crate::space::{Arch, BlockGene, BlockKind};

/// The default-domain opset the graph is written for (every op used is
/// unchanged in it since opset 13 or earlier, except Pad's `edge` mode, 11+).
pub const ONNX_OPSET: i64 = 17;
/// The ONNX IR version matching [`ONNX_OPSET`] (ONNX 1.12..1.13).
pub const ONNX_IR_VERSION: i64 = 8;
/// Name of the graph input: `[batch, 3, height, width]` f32, RGB in 0..1.
pub const INPUT_NAME: &str = "lr";
/// Name of the graph output: `[batch, 3, scale·height, scale·width]` f32.
pub const OUTPUT_NAME: &str = "sr";

/// The whole ONNX model of the network `arch` with parameters `tensors`
/// (reference names, as `Esrn::named_tensors` lists them), with metadata
/// `genes`, `scale`, `g0`, `bias` and `esr_ea_version`.
pub fn model_proto(arch: &Arch, tensors: &[(String, Tensor)]) -> Result<ModelProto> {
    crate::model::check_arch(arch).context("cannot export to ONNX")?;
    let weights: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut g = Builder {
        weights,
        bias: arch.bias,
        nodes: Vec::new(),
        initializers: Vec::new(),
        next_id: 0,
    };
    let has_c = arch.genes.iter().any(|gene| gene.kind == BlockKind::C);
    let body_in = if has_c {
        g.pad_to_even(INPUT_NAME)?
    } else {
        INPUT_NAME.to_string()
    };
    let body_out = g.network(arch, &body_in)?;
    let out = if has_c {
        g.crop_to_scaled_input(&body_out, arch.scale)?
    } else {
        body_out
    };
    // The output must carry the public name: rename the last node's output.
    let last = g.nodes.last_mut().context("the graph has no nodes")?;
    for o in last.output.iter_mut().filter(|o| **o == out) {
        *o = OUTPUT_NAME.to_string();
    }
    let graph = GraphProto {
        name: Some(format!("esrn_x{}", arch.scale)),
        node: g.nodes,
        initializer: g.initializers,
        input: vec![image_value(INPUT_NAME, "batch", "height", "width")],
        output: vec![image_value(OUTPUT_NAME, "batch", "out_height", "out_width")],
        ..Default::default()
    };
    let meta = |key: &str, value: String| StringStringEntryProto {
        key: Some(key.to_string()),
        value: Some(value),
    };
    Ok(ModelProto {
        ir_version: Some(ONNX_IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(ONNX_OPSET),
        }],
        producer_name: Some("esr-ea".to_string()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
        doc_string: Some(format!(
            "ESRN x{} super-resolution network found by esr-ea: input '{INPUT_NAME}' \
             [batch, 3, H, W] RGB in 0..1, output '{OUTPUT_NAME}' [batch, 3, {s}H, {s}W]",
            arch.scale,
            s = arch.scale
        )),
        graph: Some(graph),
        metadata_props: vec![
            meta("genes", arch.genes.to_string()),
            meta("scale", arch.scale.to_string()),
            meta("g0", arch.g0.to_string()),
            meta("bias", arch.bias.to_string()),
            meta("esr_ea_version", env!("CARGO_PKG_VERSION").to_string()),
        ],
        ..Default::default()
    })
}

/// A 4-d f32 value with symbolic batch/height/width names.
fn image_value(name: &str, batch: &str, height: &str, width: &str) -> ValueInfoProto {
    let dim = |d: tensor_shape_proto::dimension::Value| tensor_shape_proto::Dimension {
        value: Some(d),
        denotation: None,
    };
    let param = |s: &str| {
        dim(tensor_shape_proto::dimension::Value::DimParam(
            s.to_string(),
        ))
    };
    let shape = TensorShapeProto {
        dim: vec![
            param(batch),
            dim(tensor_shape_proto::dimension::Value::DimValue(3)),
            param(height),
            param(width),
        ],
    };
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(shape),
            })),
        }),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn attr_string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::String as i32),
        s: Some(s.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// Accumulates nodes and initializers with unique value names.
struct Builder<'a> {
    weights: HashMap<&'a str, &'a Tensor>,
    bias: bool,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next_id: usize,
}

impl Builder<'_> {
    /// Adds one node with a fresh output name; returns that name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = format!("{}_{}", op.to_lowercase(), self.next_id);
        self.next_id += 1;
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(out.clone()),
            op_type: Some(op.to_string()),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// An int64 constant initializer; returns its name.
    fn int64s(&mut self, values: &[i64]) -> String {
        let name = format!("const_{}", self.next_id);
        self.next_id += 1;
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: values.to_vec(),
            ..Default::default()
        });
        name
    }

    /// Adds the parameter `name` as an f32 initializer (once, even when the
    /// C block's shared conv uses it three times); returns its name.
    fn weight(&mut self, name: &str) -> Result<String> {
        if self
            .initializers
            .iter()
            .any(|t| t.name.as_deref() == Some(name))
        {
            return Ok(name.to_string());
        }
        let tensor = self
            .weights
            .get(name)
            .with_context(|| format!("cannot export to ONNX: tensor '{name}' is missing"))?;
        let t = tensor.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(TensorProto {
            name: Some(name.to_string()),
            dims: t.dims().iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
        Ok(name.to_string())
    }

    /// Conv with the weights under `prefix` (`….weight`, `….bias`): 3x3 with
    /// padding 1 or 1x1, `groups` channel groups.
    fn conv(&mut self, x: &str, prefix: &str, groups: usize) -> Result<String> {
        let w_name = format!("{prefix}.weight");
        let w = self.weight(&w_name)?;
        let dims = self.weights[w_name.as_str()].dims().to_vec();
        let [_, _, kh, kw] = dims[..] else {
            bail!("cannot export to ONNX: tensor '{w_name}' is not 4-d: {dims:?}");
        };
        let mut inputs = vec![x.to_string(), w];
        if self.bias {
            inputs.push(self.weight(&format!("{prefix}.bias"))?);
        }
        let (ph, pw) = ((kh / 2) as i64, (kw / 2) as i64);
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node(
            "Conv",
            &inputs,
            vec![
                attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                attr_ints("pads", &[ph, pw, ph, pw]),
                attr_ints("strides", &[1, 1]),
                attr_ints("dilations", &[1, 1]),
                attr_int("group", groups as i64),
            ],
        ))
    }

    fn conv_relu(&mut self, x: &str, prefix: &str, groups: usize) -> Result<String> {
        let y = self.conv(x, prefix, groups)?;
        Ok(self.node("Relu", &[&y], vec![]))
    }

    fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    fn concat(&mut self, parts: &[String]) -> String {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        self.node("Concat", &parts, vec![attr_int("axis", 1)])
    }

    fn depth_to_space(&mut self, x: &str, r: usize) -> String {
        self.node(
            "DepthToSpace",
            &[x],
            vec![attr_int("blocksize", r as i64), attr_string("mode", "CRD")],
        )
    }

    /// ShuffleNet channel shuffle of `channels` channels into `groups` groups
    /// (as `model::ops::channel_shuffle`): `[B, g, C/g, H·W]`, swap axes 1
    /// and 2, back to the input's own shape (so H and W stay dynamic).
    fn channel_shuffle(&mut self, x: &str, channels: usize, groups: usize) -> String {
        if groups <= 1 {
            return x.to_string();
        }
        let split = self.int64s(&[0, groups as i64, (channels / groups) as i64, -1]);
        let grouped = self.node("Reshape", &[x, &split], vec![]);
        let swapped = self.node(
            "Transpose",
            &[&grouped],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        );
        let shape = self.node("Shape", &[x], vec![]);
        self.node("Reshape", &[&swapped, &shape], vec![])
    }

    /// The body input for a network with C blocks: `x` with its last row and
    /// column replicated, cut back to the next even height and width (an
    /// even size is left as it was, an odd one gains one replicated line).
    fn pad_to_even(&mut self, x: &str) -> Result<String> {
        let pads = self.int64s(&[0, 0, 0, 0, 0, 0, 1, 1]);
        let padded = self.node("Pad", &[x, &pads], vec![attr_string("mode", "edge")]);
        let hw = self.spatial_dims(x);
        let one = self.int64s(&[1]);
        let two = self.int64s(&[2]);
        let plus_one = self.node("Add", &[&hw, &one], vec![]);
        let halves = self.node("Div", &[&plus_one, &two], vec![]);
        let even = self.node("Mul", &[&halves, &two], vec![]);
        Ok(self.slice_hw(&padded, &even))
    }

    /// `y` cut to exactly `scale ×` the height and width of the graph input.
    fn crop_to_scaled_input(&mut self, y: &str, scale: usize) -> Result<String> {
        let hw = self.spatial_dims(INPUT_NAME);
        let s = self.int64s(&[scale as i64]);
        let ends = self.node("Mul", &[&hw, &s], vec![]);
        Ok(self.slice_hw(y, &ends))
    }

    /// `[H, W]` of a 4-d value, as int64.
    fn spatial_dims(&mut self, x: &str) -> String {
        let shape = self.node("Shape", &[x], vec![]);
        let starts = self.int64s(&[2]);
        let ends = self.int64s(&[4]);
        self.node("Slice", &[&shape, &starts, &ends], vec![])
    }

    /// `x[:, :, :ends[0], :ends[1]]`.
    fn slice_hw(&mut self, x: &str, ends: &str) -> String {
        let starts = self.int64s(&[0, 0]);
        let axes = self.int64s(&[2, 3]);
        self.node("Slice", &[x, &starts, ends, &axes], vec![])
    }

    /// The network as defined (`Esrn::forward_unpadded`) on `x`.
    fn network(&mut self, arch: &Arch, x: &str) -> Result<String> {
        let x0 = self.conv(x, "SFENet1", 1)?;
        let mut cur = self.conv(&x0, "ERDBLayer.SFENet2", 1)?;
        let mut kept = Vec::with_capacity(arch.genes.len());
        let mut in_ch = arch.g0;
        for (i, gene) in arch.genes.iter().enumerate() {
            cur = self.block(&cur, gene, in_ch, &format!("ERDBLayer.ERBD.{i}"))?;
            kept.push(cur.clone());
            in_ch = gene.out;
        }
        let cat = self.concat(&kept);
        let fused = self.conv(&cat, "ERDBLayer.GFF.0", 1)?;
        let global = self.conv(&fused, "ERDBLayer.GFF.1", 1)?;
        let mut y = self.add(&global, &x0);
        let steps: &[(usize, usize)] = match arch.scale {
            2 => &[(0, 2), (2, 0)],
            3 => &[(0, 3), (2, 0)],
            _ => &[(0, 2), (2, 2), (4, 0)],
        };
        for &(index, shuffle) in steps {
            y = self.conv(&y, &format!("UPNet.{index}"), 1)?;
            if shuffle > 0 {
                y = self.depth_to_space(&y, shuffle);
            }
        }
        Ok(y)
    }

    /// One block (`Block::forward`) on `x` with `in_ch` channels.
    fn block(&mut self, x: &str, gene: &BlockGene, in_ch: usize, prefix: &str) -> Result<String> {
        let g = gene.growth;
        let xi = if in_ch != g {
            self.conv(x, &format!("{prefix}.InConv"), 1)?
        } else {
            x.to_string()
        };
        let body = match gene.kind {
            BlockKind::S => {
                let mut cat = vec![xi.clone()];
                let mut cur = xi.clone();
                for j in 0..gene.convs {
                    let t = self.conv_relu(&cur, &format!("{prefix}.Convs.{j}.0"), 1)?;
                    cat.push(t);
                    let joined = self.concat(&cat);
                    cur = self.conv(&joined, &format!("{prefix}.ShrinkConv.{j}"), 1)?;
                }
                cur
            }
            BlockKind::G => {
                let mut cat = vec![xi.clone()];
                for c in 0..gene.convs {
                    // The shuffle only feeds the grouped conv; the running
                    // concat keeps its channel order (reference `RDB_Conv`).
                    let joined = if cat.len() == 1 {
                        cat[0].clone()
                    } else {
                        self.concat(&cat)
                    };
                    let shuffled = self.channel_shuffle(&joined, (c + 1) * g, c + 1);
                    let t = self.conv_relu(
                        &shuffled,
                        &format!("{prefix}.convs.{c}.conv.0"),
                        group_conv_groups(c),
                    )?;
                    cat.push(t);
                }
                let joined = self.concat(&cat);
                self.conv(&joined, &format!("{prefix}.LFF"), 1)?
            }
            BlockKind::C => {
                if gene.convs == 0 {
                    bail!("cannot export to ONNX: block {gene} has no convolutions");
                }
                let pooled = self.node(
                    "AveragePool",
                    &[&xi],
                    vec![
                        attr_ints("kernel_shape", &[2, 2]),
                        attr_ints("strides", &[2, 2]),
                    ],
                );
                let mut cat = vec![pooled.clone()];
                let mut cur = pooled;
                let mut out = None;
                for j in 0..gene.convs {
                    // One conv applied three times with shared weights.
                    let shared = format!("{prefix}.Convs.{j}.0");
                    let mut t = cur.clone();
                    for _ in 0..3 {
                        t = self.conv_relu(&t, &shared, 1)?;
                    }
                    cat.push(t);
                    let joined = self.concat(&cat);
                    let shrink = format!("{prefix}.ShrinkConv.{j}");
                    if j + 1 < gene.convs {
                        cur = self.conv(&joined, &shrink, 1)?;
                    } else {
                        let up = self.depth_to_space(&joined, 2);
                        out = Some(self.conv(&up, &shrink, 1)?);
                    }
                }
                out.context("contextual block without convolutions")?
            }
        };
        // Residual exactly as `Block::forward`.
        Ok(if gene.out == in_ch {
            self.add(x, &body)
        } else if gene.out == g {
            self.add(&xi, &body)
        } else {
            let projected = self.conv(x, &format!("{prefix}.OutConv"), 1)?;
            self.add(&projected, &body)
        })
    }
}
