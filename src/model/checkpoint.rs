//! Self-describing safetensors checkpoints, and loading of reference files.
//!
//! A checkpoint written by [`save_model`] holds every parameter under its
//! reference name (spec §8) plus `__metadata__` entries recording the
//! architecture (`genes`, `g0`, `scale`, `bias`) and the format version, so
//! [`load_model`] needs nothing but the file. Reference (PyTorch) files carry
//! no metadata: [`load_weights_into`] takes the architecture from the caller.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use safetensors::SafeTensors;

use super::Esrn;
use crate::space::{Arch, GeneList};

/// Version of the checkpoint layout written by [`save_model`].
pub const FORMAT_VERSION: u32 = 1;
/// Value of the `format` metadata entry.
const FORMAT_NAME: &str = "esr-ea/esrn";

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    // The cause is in the message and not also a `source`: chains printed
    // with `{:#}` would say it twice.
    #[error("{path}: {action} failed: {cause}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// What was attempted (`read`, `write`, `rename`).
        action: &'static str,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format {
        /// The checkpoint file.
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// A metadata entry is missing or invalid.
    #[error("{path}: metadata '{field}' {reason}")]
    Metadata {
        /// The checkpoint file.
        path: PathBuf,
        /// The metadata key.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The tensors do not match the architecture (first mismatch by name).
    #[error("{source_name}: tensor '{name}' {problem}")]
    Mismatch {
        /// The file (or other source) the tensors came from.
        source_name: String,
        /// The first tensor that does not match.
        name: String,
        /// Missing, unexpected, or shape expected vs found.
        problem: String,
    },
    /// Building the network or moving tensors failed.
    #[error("{source_name}: {cause}")]
    Model {
        /// The file (or other source) involved.
        source_name: String,
        /// The candle error.
        cause: candle_core::Error,
    },
}

fn model_err(source_name: &str) -> impl Fn(candle_core::Error) -> CheckpointError + '_ {
    move |cause| CheckpointError::Model {
        source_name: source_name.to_string(),
        cause,
    }
}

/// The metadata recorded for an architecture.
fn arch_metadata(arch: &Arch) -> HashMap<String, String> {
    HashMap::from([
        ("format".to_string(), FORMAT_NAME.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("genes".to_string(), arch.genes.to_string()),
        ("g0".to_string(), arch.g0.to_string()),
        ("scale".to_string(), arch.scale.to_string()),
        ("bias".to_string(), arch.bias.to_string()),
    ])
}

/// Reads the architecture back from checkpoint metadata.
fn arch_from_metadata(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<Arch, CheckpointError> {
    let err = |field: &str, reason: String| CheckpointError::Metadata {
        path: path.to_path_buf(),
        field: field.to_string(),
        reason,
    };
    let get = |field: &str| {
        meta.get(field)
            .map(String::as_str)
            .ok_or_else(|| err(field, "is missing".to_string()))
    };
    let format = get("format")?;
    if format != FORMAT_NAME {
        return Err(err(
            "format",
            format!("is '{format}', expected '{FORMAT_NAME}'"),
        ));
    }
    let version = get("format_version")?;
    if version != FORMAT_VERSION.to_string() {
        return Err(err(
            "format_version",
            format!("is '{version}'; this build reads version {FORMAT_VERSION}"),
        ));
    }
    let genes = GeneList::parse_args(&[get("genes")?])
        .map_err(|e| err("genes", format!("is invalid: {e}")))?;
    let number = |field: &str| -> Result<usize, CheckpointError> {
        let v = get(field)?;
        v.parse()
            .map_err(|_| err(field, format!("'{v}' is not a whole number")))
    };
    let g0 = number("g0")?;
    let scale = number("scale")?;
    let bias = match get("bias")? {
        "true" => true,
        "false" => false,
        other => return Err(err("bias", format!("'{other}' is not true or false"))),
    };
    Ok(Arch {
        genes,
        g0,
        scale,
        bias,
    })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed to disk, then renamed over the target.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io = |action, cause| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        cause,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io("write", std::io::Error::other("the path has no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(|e| io("write", e))?;
        file.write_all(bytes).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::fsutil::sync_dir(dir);
        }
        Ok(())
    })();
    if result.is_err() {
        // Best effort: never leave a half-written temporary behind.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves the network's parameters (as f32) and its architecture to a
/// safetensors file, atomically.
pub fn save_model(model: &Esrn, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let tensors = model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| {
            // The safetensors writer reads raw host memory: bring every
            // tensor to the CPU, f32, contiguous first.
            let t = t
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .contiguous()?;
            Ok((n, t))
        })
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(model_err(&name))?;
    let format_err = |reason: String| CheckpointError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let mut bytes = safetensors::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        Some(arch_metadata(model.arch())),
    )
    .map_err(|e| format_err(e.to_string()))?;
    sort_metadata(&mut bytes).map_err(format_err)?;
    write_atomic(path, &bytes)
}

/// Rewrites the header's `__metadata__` entries in key order, in place.
/// The safetensors writer takes them as a `HashMap` and writes them in its
/// random iteration order, so identical weights gave different bytes; the
/// sorted header has the same length, so nothing else moves.
fn sort_metadata(bytes: &mut [u8]) -> Result<(), String> {
    let bad = |what: &str| format!("unexpected safetensors header from the writer: {what}");
    let len: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("shorter than 8 bytes"))?;
    let end = 8 + u64::from_le_bytes(len) as usize;
    let header = bytes
        .get(8..end)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("not UTF-8"))?
        .trim_end();
    let mut value: serde_json::Value =
        serde_json::from_str(header).map_err(|e| bad(&e.to_string()))?;
    if let Some(serde_json::Value::Object(meta)) = value.get_mut("__metadata__") {
        let sorted: std::collections::BTreeMap<String, serde_json::Value> =
            std::mem::take(meta).into_iter().collect();
        meta.extend(sorted);
    }
    let text = serde_json::to_string(&value).map_err(|e| bad(&e.to_string()))?;
    if text.len() != header.len() {
        return Err(bad("its length changed when sorted"));
    }
    bytes[8..8 + text.len()].copy_from_slice(text.as_bytes());
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(path).map_err(|cause| CheckpointError::Io {
        path: path.to_path_buf(),
        action: "read",
        cause,
    })
}

fn load_tensors(
    path: &Path,
    bytes: &[u8],
    device: &Device,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    candle_core::safetensors::load_buffer(bytes, device).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Loads a checkpoint written by [`save_model`]: the architecture comes from
/// its metadata, the weights become trainable variables on `device`.
pub fn load_model(
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<(Esrn, VarMap), CheckpointError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let Some(meta) = header.metadata() else {
        return Err(CheckpointError::Metadata {
            path: path.to_path_buf(),
            field: "__metadata__".to_string(),
            reason: "is missing: not an esr-ea checkpoint (for reference weights, give the architecture and use load_weights_into)".to_string(),
        });
    };
    let arch = arch_from_metadata(path, meta)?;
    let tensors = load_tensors(path, &bytes, device)?;
    build_from_tensors(&arch, tensors, device, &path.display().to_string())
}

/// Loads weights with no architecture metadata (e.g. the reference's
/// checkpoints) into a network of architecture `arch`. Every tensor of the
/// file must belong to the network and vice versa.
pub fn load_weights_into(
    arch: &Arch,
    path: impl AsRef<Path>,
    device: &Device,
) -> Result<(Esrn, VarMap), CheckpointError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let tensors = load_tensors(path, &bytes, device)?;
    build_from_tensors(arch, tensors, device, &path.display().to_string())
}

/// Builds a network of architecture `arch` whose trainable variables take the
/// values of `tensors` (reference names; any float dtype, converted to f32).
pub fn model_from_tensors(
    arch: &Arch,
    tensors: HashMap<String, Tensor>,
    device: &Device,
) -> Result<(Esrn, VarMap), CheckpointError> {
    build_from_tensors(arch, tensors, device, "tensors")
}

fn build_from_tensors(
    arch: &Arch,
    tensors: HashMap<String, Tensor>,
    device: &Device,
    source_name: &str,
) -> Result<(Esrn, VarMap), CheckpointError> {
    let varmap = VarMap::new();
    let model = Esrn::new(arch, VarBuilder::from_varmap(&varmap, DType::F32, device))
        .map_err(model_err(source_name))?;
    let expected: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    check_names_and_shapes(&expected, &tensors, arch, source_name)?;
    let vars = varmap.data().lock().map_err(|_| {
        model_err(source_name)(candle_core::Error::Msg(
            "the variable map lock is poisoned".into(),
        ))
    })?;
    for (name, value) in &tensors {
        let set = || -> candle_core::Result<()> {
            let value = value.to_dtype(DType::F32)?.to_device(device)?;
            match vars.get(name) {
                Some(var) => var.set(&value),
                None => candle_core::bail!("parameter '{name}' is not in the variable map"),
            }
        };
        set().map_err(model_err(source_name))?;
    }
    drop(vars);
    Ok((model, varmap))
}

/// Compares names and shapes, reporting the first mismatch in name order.
fn check_names_and_shapes(
    expected: &HashMap<String, Tensor>,
    found: &HashMap<String, Tensor>,
    arch: &Arch,
    source_name: &str,
) -> Result<(), CheckpointError> {
    let names: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    for name in names {
        let problem = match (expected.get(name), found.get(name)) {
            (Some(e), None) => format!(
                "is missing (the architecture needs shape {:?})",
                e.dims()
            ),
            (None, Some(f)) => format!(
                "(shape {:?}) is unexpected: architecture [{}] x{} (G0 {}, bias {}) has no such parameter",
                f.dims(),
                arch.genes,
                arch.scale,
                arch.g0,
                arch.bias
            ),
            (Some(e), Some(f)) if e.dims() != f.dims() => format!(
                "has shape {:?}, the architecture expects {:?}",
                f.dims(),
                e.dims()
            ),
            _ => continue,
        };
        return Err(CheckpointError::Mismatch {
            source_name: source_name.to_string(),
            name: name.clone(),
            problem,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::GeneList;

    #[test]
    fn identical_weights_give_identical_bytes() {
        let arch = Arch {
            genes: GeneList::parse_args(&["S_4_8_8"]).unwrap(),
            g0: 8,
            scale: 2,
            bias: true,
        };
        let (model, _) = Esrn::seeded(&arch, 1, &Device::Cpu).unwrap();
        let dir = std::env::temp_dir().join(format!("esr-ea-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                let path = dir.join(format!("m{i}.safetensors"));
                save_model(&model, &path).unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            files.iter().all(|f| f == &files[0]),
            "the bytes differ between saves"
        );
        let loaded = load_model_from_bytes(&files[0]);
        assert_eq!(loaded.genes, arch.genes);
    }

    fn load_model_from_bytes(bytes: &[u8]) -> Arch {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(st.len(), st.names().len());
        arch_from_metadata(Path::new("m.safetensors"), &meta).unwrap()
    }
}
