//! One split of a dataset (`train`, `test`, a benchmark's `test`) and the
//! scale check it shares with the search space: read by the sections of
//! `parse` and by `pipeline`'s benchmark sections alike.

use std::path::Path;

use super::error::ConfigError;
use super::reader::{show, Node, Reader};
use super::{paths, DataSplit};

/// Scales the upsampler supports.
const SCALES: [u64; 3] = [2, 3, 4];

/// A scale factor the upsampler supports.
pub(super) fn scale_value(r: &Reader, node: &Node) -> Result<usize, ConfigError> {
    match node.value.as_u64() {
        Some(s) if SCALES.contains(&s) => Ok(s as usize),
        _ => Err(r.error(
            &node.path,
            format!("{} is not supported (allowed: 2, 3, 4)", show(node.value)),
        )),
    }
}

/// One split of a dataset; absent keys keep `defaults`.
pub(super) fn split(
    r: &mut Reader,
    node: &Node,
    base_dir: &Path,
    scale: usize,
    defaults: fn(std::path::PathBuf, usize) -> DataSplit,
) -> Result<DataSplit, ConfigError> {
    let hr = r.require(node, "root_HR", "the folder of high-resolution images")?;
    let mut s = defaults(paths::resolve(base_dir, &r.string(&hr)?), scale);
    if let Some(n) = r.get(node, "root_LR")? {
        s.root_lr = Some(paths::resolve(base_dir, &r.string(&n)?));
    }
    if let Some(n) = r.get(node, "upscale")? {
        let up = scale_value(r, &n)?;
        if up != scale {
            return Err(r.error(
                &n.path,
                format!("{up} does not match nas.search_space.esrbody.scale = {scale}"),
            ));
        }
    }
    if let Some(n) = r.get(node, "crop")? {
        s.crop = r.count(&n, 1)?;
    }
    for (key, field) in [
        ("hflip", &mut s.hflip),
        ("vflip", &mut s.vflip),
        ("rot90", &mut s.rot90),
        ("shuffle", &mut s.shuffle),
    ] {
        if let Some(n) = r.get(node, key)? {
            *field = r.boolean(&n)?;
        }
    }
    if let Some(n) = r.get(node, "batch_size")? {
        s.batch_size = r.count(&n, 1)?;
    }
    if let Some(n) = r.get(node, "val_crop")? {
        s.val_crop = r.count(&n, 0)?;
    }
    Ok(s)
}
