//! Reads the (ref-resolved) YAML tree into [`Config`], section by section,
//! checking every value on the way.

use std::path::Path;

use serde_yaml::Value;

use super::error::ConfigError;
use super::latency::{parse_size, LatencyLimit, Runtime};
use super::reader::{show, Node, Reader};
use super::split::{scale_value, split};
use super::{Config, DataSplit, DatasetConfig, ScheduleKind, TrainerConfig};
use crate::search::{Policy, Range, Selection, Strategy};
use crate::space::{BlockKind, SearchSpace};

/// Reads a whole configuration document.
pub(crate) fn config(tree: &Value, r: &mut Reader, base_dir: &Path) -> Result<Config, ConfigError> {
    let root = Node::root(tree);
    if !tree.is_mapping() {
        return Err(r.error(
            "",
            format!(
                "expected a mapping with a nas section (and optionally fully_train), found {}",
                show(tree)
            ),
        ));
    }
    let top_seed = r.get(&root, "seed")?.map(|n| r.whole(&n, 0)).transpose()?;
    let nas = r.section(&root, "nas")?.ok_or_else(|| {
        r.error(
            "nas",
            "missing: the nas section (search_space, search_algorithm, dataset, trainer)",
        )
    })?;

    let search_space = search_space(r, &nas)?;
    let scale = search_space.scale;
    let (policy, range) = search_algorithm(r, &nas)?;
    let latency_limit = latency_limit(r, &nas)?;
    // Without a dataset section the embedded photographs are used, as a run
    // without any config does (Config::from_yaml_str says so).
    let dataset = match r.section(&nas, "dataset")? {
        Some(node) => dataset(r, &node, base_dir, scale)?,
        None => super::embedded_photographs(scale),
    };
    let trainer_node = r.section(&nas, "trainer")?;
    let median_stop = super::median_stop::parse(r, trainer_node.as_ref())?;
    let halving = super::halving::parse(r, trainer_node.as_ref())?;
    if median_stop.is_some() && halving.is_some() {
        let path = trainer_node
            .as_ref()
            .map(|t| t.key_path("successive_halving"))
            .unwrap_or_default();
        return Err(r.error(
            &path,
            "cannot be on together with median_stop (allowed: one of the two stopping rules)",
        ));
    }
    let mut search_trainer = trainer(r, trainer_node, TrainerConfig::search_defaults(), scale)?;
    search_trainer.median_stop = median_stop;
    search_trainer.successive_halving = halving;

    let fully_train = r.section(&root, "fully_train")?;
    let (full_trainer, full_dataset) = match fully_train {
        None => (TrainerConfig::full_defaults(), dataset.clone()),
        Some(ft) => {
            let trainer_node = r.section(&ft, "trainer")?;
            let t = trainer(r, trainer_node, TrainerConfig::full_defaults(), scale)?;
            let d = match r.section(&ft, "dataset")? {
                Some(d) => self::dataset(r, &d, base_dir, scale)?,
                None => dataset.clone(),
            };
            (t, d)
        }
    };
    let seed = top_seed.or(search_trainer.seed).unwrap_or(0);
    let (pipeline, top_n, benchmarks) = super::pipeline::parse(r, &root, base_dir, scale)?;
    Ok(Config {
        seed,
        search_space,
        policy,
        range,
        latency_limit,
        dataset,
        search_trainer,
        full_trainer,
        full_dataset,
        pipeline,
        top_n,
        benchmarks,
        executor: super::executor::parse(r, &root)?,
        data_cache: match r.get(&root, "data_cache")? {
            Some(n) => crate::data::CachePlace::parse(&r.string(&n)?, base_dir),
            None => Default::default(),
        },
        source: r.file().to_string(),
    })
}

/// `nas.search_space.esrbody`.
fn search_space(r: &mut Reader, nas: &Node) -> Result<SearchSpace, ConfigError> {
    let defaults = SearchSpace::default();
    let Some(space) = r.section(nas, "search_space")? else {
        return Ok(defaults);
    };
    let Some(body) = r.section(&space, "esrbody")? else {
        return Ok(defaults);
    };
    if let Some(t) = r.get(&body, "type")? {
        r.word(&t, &["ESRN"])?;
    }
    let block_type = match r.get(&body, "block_type")? {
        Some(n) => r.list(&n, |item| block_kind(r, item))?,
        None => defaults.block_type,
    };
    let conv_num = match r.get(&body, "conv_num")? {
        Some(n) => r.list(&n, |item| r.count(item, 1))?,
        None => defaults.conv_num,
    };
    let growth_rate = match r.get(&body, "growth_rate")? {
        Some(n) => r.list(&n, |item| growth(r, item))?,
        None => defaults.growth_rate,
    };
    let type_prob = weights(r, &body, "type_prob", "block_type", block_type.len())?;
    let conv_prob = weights(r, &body, "conv_prob", "conv_num", conv_num.len())?;
    let growth_prob = weights(r, &body, "growth_prob", "growth_rate", growth_rate.len())?;
    let g0 = match r.get(&body, "G0")? {
        Some(n) => {
            let g0 = r.count(&n, 4)?;
            if g0 % 4 != 0 {
                return Err(r.error(
                    &n.path,
                    format!(
                        "{g0} must be a multiple of 4 (the upsampler pixel-shuffles 3·G0 channels \
                         by 2, leaving 3·G0/4)"
                    ),
                ));
            }
            g0
        }
        None => defaults.g0,
    };
    let scale = match r.get(&body, "scale")? {
        Some(n) => scale_value(r, &n)?,
        None => defaults.scale,
    };
    let bias = match r.get(&body, "bias")? {
        Some(n) => r.boolean(&n)?,
        None => defaults.bias,
    };
    Ok(SearchSpace {
        block_type,
        conv_num,
        growth_rate,
        type_prob,
        conv_prob,
        growth_prob,
        g0,
        scale,
        bias,
    })
}

/// One entry of `block_type`: S, G or C.
fn block_kind(r: &Reader, node: &Node) -> Result<BlockKind, ConfigError> {
    let unknown = || {
        r.error(
            &node.path,
            format!(
                "unknown block kind {} (allowed: S shrink, G group, C contextual)",
                show(node.value)
            ),
        )
    };
    let text = node.value.as_str().ok_or_else(unknown)?;
    text.parse().map_err(|_| unknown())
}

/// One entry of `growth_rate`: a multiple of 4.
fn growth(r: &Reader, node: &Node) -> Result<usize, ConfigError> {
    let g = r.count(node, 4)?;
    if g % 4 != 0 {
        return Err(r.error(
            &node.path,
            format!(
                "growth rate {g} is not a multiple of 4: C blocks pixel-shuffle (C+1)·G channels \
                 by 2 and G blocks split G channels into up to 4 groups"
            ),
        ));
    }
    Ok(g)
}

/// A probability list (`type_prob`, …): one weight >= 0 per value of `of`,
/// not all zero. Absent: all ones (uniform).
fn weights(
    r: &mut Reader,
    body: &Node,
    key: &str,
    of: &str,
    len: usize,
) -> Result<Vec<f64>, ConfigError> {
    let Some(node) = r.get(body, key)? else {
        return Ok(vec![1.0; len]);
    };
    let values = r.seq(&node, |item| {
        let w = r.number(item)?;
        if w < 0.0 {
            return Err(r.error(
                &item.path,
                format!("{} is negative: weights must be >= 0", show(item.value)),
            ));
        }
        Ok(w)
    })?;
    if values.len() != len {
        return Err(r.error(
            &node.path,
            format!(
                "{} has {} weights but {of} has {len} values: give one weight per value",
                show(node.value),
                values.len()
            ),
        ));
    }
    if values.iter().sum::<f64>() <= 0.0 {
        return Err(r.error(
            &node.path,
            format!(
                "{}: all weights are 0, so no {of} value could ever be drawn; make at least one > 0",
                show(node.value)
            ),
        ));
    }
    Ok(values)
}

/// `nas.search_algorithm.policy` and `.range`.
fn search_algorithm(r: &mut Reader, nas: &Node) -> Result<(Policy, Range), ConfigError> {
    let (mut policy, mut range) = (Policy::default(), Range::default());
    let Some(alg) = r.section(nas, "search_algorithm")? else {
        return Ok((policy, range));
    };
    if let Some(n) = r.get(&alg, "type")? {
        // Vega's configs name the evolution `ESRSearch`.
        policy.strategy = match r.word(&n, &["evolution", "random", "ESRSearch"])? {
            "random" => Strategy::Random,
            _ => Strategy::Evolution,
        };
    }
    if let Some(p) = r.section(&alg, "policy")? {
        if let Some(n) = r.get(&p, "num_generation")? {
            policy.num_generation = r.count(&n, 1)?;
        }
        if let Some(n) = r.get(&p, "num_individual")? {
            policy.num_individual = r.count(&n, 1)?;
        }
        if let Some(n) = r.get(&p, "num_elitism")? {
            policy.num_elitism = r.count(&n, 1)?;
            if policy.num_elitism > policy.num_individual {
                return Err(r.error(
                    &n.path,
                    format!(
                        "{} is larger than num_individual = {}: the elites are chosen from a generation",
                        policy.num_elitism, policy.num_individual
                    ),
                ));
            }
        }
        if let Some(n) = r.get(&p, "mutation_rate")? {
            let rate = r.number(&n)?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(r.error(
                    &n.path,
                    format!("{} is outside 0..1 (a probability per gene)", show(n.value)),
                ));
            }
            policy.mutation_rate = rate;
        }
        if let Some(n) = r.get(&p, "selection")? {
            policy.selection = match r.word(&n, &["roulette", "tournament"])? {
                "tournament" => Selection::Tournament,
                _ => Selection::Roulette,
            };
        }
    }
    if let Some(g) = r.section(&alg, "range")? {
        if let Some(n) = r.get(&g, "node_num")? {
            range.node_num = r.count(&n, 1)?;
            if range.node_num < 10 {
                return Err(r.error(
                    &n.path,
                    format!(
                        "{} is below 10: crossover swaps a run of 4..node_num/2 slots, which needs \
                         node_num >= 10",
                        range.node_num
                    ),
                ));
            }
        }
        if let Some(n) = r.get(&g, "min_active")? {
            range.min_active = r.count(&n, 1)?;
        }
        if range.min_active > range.node_num {
            return Err(r.error(
                &g.key_path("min_active"),
                format!(
                    "{} is larger than node_num = {}: a network cannot use more blocks than it has slots",
                    range.min_active, range.node_num
                ),
            ));
        }
        if let Some(n) = r.get(&g, "max_params")? {
            range.max_params = r.whole(&n, 1)?;
        }
        if let Some(n) = r.get(&g, "min_params")? {
            range.min_params = r.whole(&n, 0)?;
        }
        if range.min_params > range.max_params {
            return Err(r.error(
                &g.key_path("min_params"),
                format!(
                    "{} is larger than max_params = {}",
                    range.min_params, range.max_params
                ),
            ));
        }
    }
    Ok((policy, range))
}

/// `nas.search_algorithm.range.max_latency_ms` and how it is measured
/// (`range.latency`: runtime, threads, size, frames); absent: no constraint.
fn latency_limit(r: &mut Reader, nas: &Node) -> Result<Option<LatencyLimit>, ConfigError> {
    let Some(alg) = r.section(nas, "search_algorithm")? else {
        return Ok(None);
    };
    let Some(range) = r.section(&alg, "range")? else {
        return Ok(None);
    };
    let measured = r.section(&range, "latency")?;
    let Some(max) = r.get(&range, "max_latency_ms")? else {
        if measured.is_some() {
            return Err(r.error(
                &range.key_path("latency"),
                "given without max_latency_ms: set range.max_latency_ms (ms per frame) or remove it",
            ));
        }
        return Ok(None);
    };
    let mut limit = LatencyLimit::with_max(r.positive(&max)?);
    let Some(m) = measured else {
        return Ok(Some(limit));
    };
    if let Some(n) = r.get(&m, "runtime")? {
        limit.runtime = match r.word(&n, &["candle", "onnxruntime"])? {
            "onnxruntime" => Runtime::Onnxruntime,
            _ => Runtime::Candle,
        };
    }
    if let Some(n) = r.get(&m, "threads")? {
        limit.threads = r.count(&n, 1)?;
    }
    if let Some(n) = r.get(&m, "size")? {
        let text = match n.value {
            Value::String(s) => s.clone(),
            other => show(other),
        };
        let (w, h) = parse_size(&text).map_err(|e| r.error(&n.path, e.to_string()))?;
        (limit.width, limit.height) = (w, h);
    }
    if let Some(n) = r.get(&m, "frames")? {
        limit.frames = r.count(&n, 1)?;
    }
    Ok(Some(limit))
}

/// A dataset section with `train` and `test` splits.
fn dataset(
    r: &mut Reader,
    node: &Node,
    base_dir: &Path,
    scale: usize,
) -> Result<DatasetConfig, ConfigError> {
    let split_of =
        |r: &mut Reader, key: &str, defaults: fn(std::path::PathBuf, usize) -> DataSplit| {
            let n = r.section(node, key)?.ok_or_else(|| {
                r.error(
                    &node.key_path(key),
                    format!("missing: the {key} split (root_HR, …)"),
                )
            })?;
            split(r, &n, base_dir, scale, defaults)
        };
    let train = split_of(r, "train", DataSplit::train_defaults)?;
    let test = split_of(r, "test", DataSplit::test_defaults)?;
    Ok(DatasetConfig { train, test })
}

/// A trainer section (`nas.trainer`, `fully_train.trainer`); absent keys keep `defaults`.
fn trainer(
    r: &mut Reader,
    node: Option<Node>,
    defaults: TrainerConfig,
    scale: usize,
) -> Result<TrainerConfig, ConfigError> {
    let mut t = defaults;
    let Some(node) = node else {
        return Ok(t);
    };
    if let Some(n) = r.get(&node, "epochs")? {
        t.epochs = r.count(&n, 1)?;
    }
    if let Some(n) = r.get(&node, "steps")? {
        t.steps = Some(r.count(&n, 1)?);
    }
    if let Some(n) = r.get(&node, "batch_size")? {
        t.batch_size = Some(r.count(&n, 1)?);
    }
    if let Some(n) = r.get(&node, "seed")? {
        t.seed = Some(r.whole(&n, 0)?);
    }
    if let Some(n) = r.get(&node, "scale")? {
        check_scale(r, &n, scale)?;
    }
    if let Some(n) = r.get(&node, "clip_grad_norm")? {
        t.clip_grad_norm = Some(r.positive(&n)?);
    }
    if let Some(n) = r.get(&node, "common_random_numbers")? {
        t.common_random_numbers = r.boolean(&n)?;
    }
    if let Some(opt) = r.section(&node, "optimizer")? {
        if let Some(n) = r.get(&opt, "type")? {
            r.word(&n, &["Adam"])?;
        }
        if let Some(n) = setting(r, &opt, "lr")? {
            t.lr = r.positive(&n)?;
        }
    }
    if let Some(sched) = r.section(&node, "lr_scheduler")? {
        if let Some(n) = r.get(&sched, "type")? {
            if r.word(&n, &["MultiStepLR", "CosineAnnealingLR"])? == "CosineAnnealingLR" {
                t.scheduler = ScheduleKind::Cosine { eta_min: 0.0 };
            }
        }
        if let Some(n) = setting(r, &sched, "eta_min")? {
            let ScheduleKind::Cosine { eta_min } = &mut t.scheduler else {
                return Err(r.error(
                    &n.path,
                    "eta_min belongs to type: CosineAnnealingLR (MultiStepLR uses milestones and gamma)".to_string(),
                ));
            };
            let value = r.number(&n)?;
            if !(0.0..t.lr).contains(&value) {
                return Err(r.error(
                    &n.path,
                    format!(
                        "{value} is not a rate to decay to: 0 <= eta_min < the optimizer's lr ({})",
                        t.lr
                    ),
                ));
            }
            *eta_min = value;
        }
        if let ScheduleKind::Cosine { .. } = t.scheduler {
            // Kept silently they would vanish from an exported config.
            for key in ["milestones", "gamma", "milestones_unit"] {
                if let Some(n) = setting(r, &sched, key)? {
                    return Err(r.error(
                        &n.path,
                        format!("{key} belongs to type: MultiStepLR; CosineAnnealingLR decays smoothly over the whole training and takes eta_min only"),
                    ));
                }
            }
        }
        if let Some(n) = setting(r, &sched, "milestones")? {
            t.milestones = milestones(r, &n)?;
        }
        if let Some(n) = setting(r, &sched, "gamma")? {
            let gamma = r.positive(&n)?;
            if gamma > 1.0 {
                return Err(r.error(
                    &n.path,
                    format!("{gamma} is above 1: the rate is multiplied by gamma at each milestone (0 < gamma <= 1)"),
                ));
            }
            t.gamma = gamma;
        }
        if let Some(n) = r.get(&sched, "milestones_unit")? {
            t.milestones_in_steps = r.word(&n, &["epochs", "steps"])? == "steps";
        }
    }
    if let Some(loss) = r.section(&node, "loss")? {
        if let Some(n) = r.get(&loss, "type")? {
            r.word(&n, &["L1Loss"])?;
        }
    }
    if let Some(metric) = r.section(&node, "metric")? {
        if let Some(n) = r.get(&metric, "type")? {
            r.word(&n, &["PSNR"])?;
        }
        if let Some(params) = r.section(&metric, "params")? {
            if let Some(n) = r.get(&params, "scale")? {
                check_scale(r, &n, scale)?;
            }
        }
    }
    Ok(t)
}

/// A setting Vega accepts both as `section.params.key` and as flat `section.key`.
fn setting<'v>(
    r: &mut Reader,
    section: &Node<'v>,
    key: &str,
) -> Result<Option<Node<'v>>, ConfigError> {
    let nested = match r.section(section, "params")? {
        Some(params) => r.get(&params, key)?,
        None => None,
    };
    let flat = r.get(section, key)?;
    match (nested, flat) {
        (Some(a), Some(b)) => Err(r.error(
            &b.path,
            format!(
                "set twice ({} here and {} in {}); keep one",
                show(b.value),
                show(a.value),
                a.path
            ),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// MultiStepLR milestones: whole numbers, strictly increasing (may be empty).
fn milestones(r: &Reader, node: &Node) -> Result<Vec<usize>, ConfigError> {
    let values = r.seq(node, |item| r.count(item, 1))?;
    if values.windows(2).any(|w| w[0] >= w[1]) {
        return Err(r.error(
            &node.path,
            format!(
                "{} must increase strictly (each milestone once, in order)",
                show(node.value)
            ),
        ));
    }
    Ok(values)
}

/// A repeated scale setting (`trainer.scale`, `metric.params.scale`, …)
/// must agree with `esrbody.scale`.
fn check_scale(r: &Reader, node: &Node, scale: usize) -> Result<(), ConfigError> {
    let s = scale_value(r, node)?;
    if s != scale {
        return Err(r.error(
            &node.path,
            format!("{s} does not match nas.search_space.esrbody.scale = {scale}"),
        ));
    }
    Ok(())
}
