//! `nas.trainer.successive_halving`: reading and writing successive
//! halving's settings ([`crate::search::Halving`]). Absent means off, and
//! the resolved config then says nothing about it.

use serde_yaml::Value;

use super::error::ConfigError;
use super::median_stop::checkpoints;
use super::reader::{show, Node, Reader};
use crate::search::Halving;

/// Where the generation is cut when the section names no checkpoints: half-way.
const DEFAULT_CHECKPOINTS: [f64; 1] = [0.5];
/// The share that goes on when the section says nothing: half.
const DEFAULT_KEEP: f64 = 0.5;

/// Reads `successive_halving` under a trainer section (`None`: off).
pub(crate) fn parse(
    r: &mut Reader,
    trainer: Option<&Node>,
) -> Result<Option<Halving>, ConfigError> {
    let Some(trainer) = trainer else {
        return Ok(None);
    };
    let Some(node) = r.section(trainer, "successive_halving")? else {
        return Ok(None);
    };
    let mut halving = Halving {
        checkpoints: DEFAULT_CHECKPOINTS.to_vec(),
        keep: DEFAULT_KEEP,
        window: None,
    };
    if let Some(n) = r.get(&node, "checkpoints")? {
        halving.checkpoints = checkpoints(r, &n)?;
    }
    if let Some(n) = r.get(&node, "keep")? {
        halving.keep = match n.value.as_f64() {
            Some(x) if x > 0.0 && x < 1.0 => x,
            _ => {
                return Err(r.error(
                    &n.path,
                    format!(
                        "{} is not allowed (allowed: the share of the generation that continues at each checkpoint, strictly between 0 and 1, e.g. 0.5)",
                        show(n.value)
                    ),
                ))
            }
        };
    }
    if let Some(n) = r.get(&node, "window")? {
        halving.window = Some(r.count(&n, 1)?);
    }
    Ok(Some(halving))
}

/// The section as the resolved config writes it.
pub(crate) fn emit(halving: &Halving) -> Value {
    let mut m = serde_yaml::Mapping::new();
    m.insert(
        "checkpoints".into(),
        Value::Sequence(halving.checkpoints.iter().map(|&c| c.into()).collect()),
    );
    m.insert("keep".into(), halving.keep.into());
    if let Some(w) = halving.window {
        m.insert("window".into(), w.into());
    }
    Value::Mapping(m)
}
