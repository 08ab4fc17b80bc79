//! Writes a resolved [`Config`] back as YAML in the file's own shape.

use serde_yaml::{Mapping, Value};

use super::latency::LatencyLimit;
use super::{Config, DataSplit, DatasetConfig, ScheduleKind, TrainerConfig};
use crate::search::Selection;

/// Builds a mapping from (key, value) pairs, keeping their order.
fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        if !v.is_null() {
            m.insert(Value::from(k), v);
        }
    }
    Value::Mapping(m)
}

fn list<T: Into<Value> + Clone>(items: &[T]) -> Value {
    Value::Sequence(items.iter().cloned().map(Into::into).collect())
}

fn path(p: &std::path::Path) -> Value {
    Value::from(p.display().to_string())
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

fn split(s: &DataSplit) -> Value {
    map([
        ("root_HR", path(&s.root_hr)),
        ("root_LR", s.root_lr.as_deref().map_or(Value::Null, path)),
        ("upscale", s.upscale.into()),
        ("crop", s.crop.into()),
        ("hflip", s.hflip.into()),
        ("vflip", s.vflip.into()),
        ("rot90", s.rot90.into()),
        ("shuffle", s.shuffle.into()),
        ("batch_size", s.batch_size.into()),
        ("val_crop", s.val_crop.into()),
    ])
}

fn dataset(d: &DatasetConfig) -> Value {
    map([("train", split(&d.train)), ("test", split(&d.test))])
}

fn trainer(t: &TrainerConfig) -> Value {
    let unit = if t.milestones_in_steps {
        "steps"
    } else {
        "epochs"
    };
    map([
        ("epochs", t.epochs.into()),
        ("steps", opt(t.steps)),
        ("batch_size", opt(t.batch_size)),
        ("seed", opt(t.seed)),
        (
            "common_random_numbers",
            opt(t.common_random_numbers.then_some(true)),
        ),
        (
            "median_stop",
            opt(t.median_stop.as_ref().map(super::median_stop::emit)),
        ),
        (
            "successive_halving",
            opt(t.successive_halving.as_ref().map(super::halving::emit)),
        ),
        (
            "optimizer",
            map([
                ("type", "Adam".into()),
                ("params", map([("lr", t.lr.into())])),
            ]),
        ),
        ("clip_grad_norm", opt(t.clip_grad_norm)),
        (
            "lr_scheduler",
            match t.scheduler {
                ScheduleKind::MultiStep => map([
                    ("type", "MultiStepLR".into()),
                    ("milestones", list(&t.milestones)),
                    ("gamma", t.gamma.into()),
                    ("milestones_unit", unit.into()),
                ]),
                ScheduleKind::Cosine { eta_min } => map([
                    ("type", "CosineAnnealingLR".into()),
                    ("eta_min", eta_min.into()),
                ]),
            },
        ),
        ("loss", map([("type", "L1Loss".into())])),
    ])
}

fn latency(l: &LatencyLimit) -> Value {
    map([
        ("runtime", l.runtime.to_string().into()),
        ("threads", l.threads.into()),
        ("size", format!("{}x{}", l.width, l.height).into()),
        ("frames", l.frames.into()),
    ])
}

/// The YAML text of a resolved configuration.
pub(crate) fn to_yaml(c: &Config) -> String {
    let s = &c.search_space;
    let kinds: Vec<String> = s.block_type.iter().map(|k| k.to_string()).collect();
    let selection = match c.policy.selection {
        Selection::Roulette => "roulette",
        Selection::Tournament => "tournament",
    };
    let doc = map([
        ("seed", c.seed.into()),
        (
            "nas",
            map([
                (
                    "search_space",
                    map([(
                        "esrbody",
                        map([
                            ("type", "ESRN".into()),
                            ("block_type", list(&kinds)),
                            ("conv_num", list(&s.conv_num)),
                            ("growth_rate", list(&s.growth_rate)),
                            ("type_prob", list(&s.type_prob)),
                            ("conv_prob", list(&s.conv_prob)),
                            ("growth_prob", list(&s.growth_prob)),
                            ("G0", s.g0.into()),
                            ("scale", s.scale.into()),
                            ("bias", s.bias.into()),
                        ]),
                    )]),
                ),
                (
                    "search_algorithm",
                    map([
                        ("type", c.policy.strategy.name().into()),
                        (
                            "policy",
                            map([
                                ("num_generation", c.policy.num_generation.into()),
                                ("num_individual", c.policy.num_individual.into()),
                                ("num_elitism", c.policy.num_elitism.into()),
                                ("mutation_rate", c.policy.mutation_rate.into()),
                                ("selection", selection.into()),
                            ]),
                        ),
                        (
                            "range",
                            map([
                                ("node_num", c.range.node_num.into()),
                                ("min_active", c.range.min_active.into()),
                                ("max_params", c.range.max_params.into()),
                                ("min_params", c.range.min_params.into()),
                                (
                                    "max_latency_ms",
                                    opt(c.latency_limit.as_ref().map(|l| l.max_ms)),
                                ),
                                (
                                    "latency",
                                    c.latency_limit.as_ref().map_or(Value::Null, latency),
                                ),
                            ]),
                        ),
                    ]),
                ),
                ("dataset", dataset(&c.dataset)),
                ("trainer", trainer(&c.search_trainer)),
            ]),
        ),
        (
            "fully_train",
            map([
                ("top_n", c.top_n.into()),
                ("dataset", dataset(&c.full_dataset)),
                ("trainer", trainer(&c.full_trainer)),
            ]),
        ),
        ("executor", super::executor::emit(&c.executor)),
        ("data_cache", c.data_cache.to_string().into()),
    ]);
    let (pipeline, benchmarks) = super::pipeline::emit(&c.pipeline, &c.benchmarks);
    let mut doc = doc;
    if let Value::Mapping(m) = &mut doc {
        m.insert("pipeline".into(), pipeline);
        for (name, section) in benchmarks {
            m.insert(name.into(), section);
        }
    }
    let body = serde_yaml::to_string(&doc).expect("a tree of plain values always serialises");
    format!(
        "# esr-ea configuration, resolved from {}\n# (every default spelt out; paths absolute)\n{body}",
        c.source.replace('\n', " ")
    )
}
