//! ONNX export of an ESRN network, for deployment (phones, TVs, TensorRT,
//! NNAPI, Core ML, TFLite converters).
//!
//! The protobuf messages are generated at build time by `prost-build` from
//! the official, vendored `proto/onnx.proto` ([`pb`]); [`graph`] turns an
//! [`crate::space::Arch`] and its weights into an opset-17 `ModelProto`:
//! one input `lr` and one output `sr` (f32, NCHW, RGB in 0..1), batch, height
//! and width dynamic, weights as f32 initializers, and the same edge padding
//! and crop as [`crate::model::Esrn::forward`] for odd sizes when the network
//! has a C block.

#![warn(missing_docs)]

pub mod graph;

/// The ONNX protobuf messages (package `onnx`), generated from the vendored
/// `proto/onnx.proto` v1.22.0 by prost-build.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use std::path::Path;

use anyhow::{Context, Result};
use prost::Message;

use crate::model::Esrn;

pub use graph::{model_proto, INPUT_NAME, ONNX_IR_VERSION, ONNX_OPSET, OUTPUT_NAME};

/// The network as ONNX protobuf bytes.
pub fn to_onnx_bytes(model: &Esrn) -> Result<Vec<u8>> {
    let proto = model_proto(model.arch(), &model.named_tensors())?;
    Ok(proto.encode_to_vec())
}

/// Writes the network as an ONNX file, atomically (temp file + rename).
pub fn write_onnx(model: &Esrn, path: &Path) -> Result<()> {
    let bytes = to_onnx_bytes(model)?;
    crate::fsutil::atomic_write(path, &bytes)
        .with_context(|| format!("{}: cannot write the ONNX file", path.display()))
}
