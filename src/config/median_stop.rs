//! `nas.trainer.median_stop`: reading and writing the median stopping
//! rule's settings ([`crate::search::MedianStop`]). Absent means off, and
//! the resolved config then says nothing about it.

use serde_yaml::Value;

use super::error::ConfigError;
use super::reader::{show, Node, Reader};
use crate::search::MedianStop;

/// Checkpoints when the section names none: a quarter and half-way.
const DEFAULT_CHECKPOINTS: [f64; 2] = [0.25, 0.5];
/// Earlier members needed at a checkpoint when the section says nothing.
const DEFAULT_MIN_HISTORY: usize = 4;

/// Reads `median_stop` under a trainer section (`None`: off).
pub(crate) fn parse(
    r: &mut Reader,
    trainer: Option<&Node>,
) -> Result<Option<MedianStop>, ConfigError> {
    let Some(trainer) = trainer else {
        return Ok(None);
    };
    let Some(node) = r.section(trainer, "median_stop")? else {
        return Ok(None);
    };
    let mut rule = MedianStop {
        checkpoints: DEFAULT_CHECKPOINTS.to_vec(),
        min_history: DEFAULT_MIN_HISTORY,
        window: None,
    };
    if let Some(n) = r.get(&node, "checkpoints")? {
        rule.checkpoints = checkpoints(r, &n)?;
    }
    if let Some(n) = r.get(&node, "min_history")? {
        rule.min_history = r.count(&n, 1)?;
    }
    if let Some(n) = r.get(&node, "window")? {
        rule.window = Some(r.count(&n, 1)?);
    }
    Ok(Some(rule))
}

pub(crate) fn checkpoints(r: &Reader, node: &Node) -> Result<Vec<f64>, ConfigError> {
    let allowed =
        "fractions of the training strictly between 0 and 1, increasing, e.g. [0.25, 0.5]";
    let values = r.seq(node, |item| match item.value.as_f64() {
        Some(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => Err(r.error(
            &item.path,
            format!("{} is not allowed (allowed: {allowed})", show(item.value)),
        )),
    })?;
    if values.is_empty() || values.windows(2).any(|w| w[0] >= w[1]) {
        return Err(r.error(
            &node.path,
            format!("{} is not allowed (allowed: {allowed})", show(node.value)),
        ));
    }
    Ok(values)
}

/// The section as the resolved config writes it.
pub(crate) fn emit(rule: &MedianStop) -> Value {
    let mut m = serde_yaml::Mapping::new();
    m.insert(
        "checkpoints".into(),
        Value::Sequence(rule.checkpoints.iter().map(|&c| c.into()).collect()),
    );
    m.insert("min_history".into(), rule.min_history.into());
    if let Some(w) = rule.window {
        m.insert("window".into(), w.into());
    }
    Value::Mapping(m)
}
