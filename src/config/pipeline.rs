//! `pipeline:`, `fully_train.top_n` and the `benchmark_<Name>` sections: what
//! runs after the search (Vega's `pipeline: [nas, fully_train, benchmark_Set5]`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::error::ConfigError;
use super::reader::{show, Node, Reader};
use super::{DataSplit, PipelineStep};

/// One `benchmark_<Name>` section: a set the fully trained models are scored on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkConfig {
    /// `Set5` for `benchmark_Set5`.
    pub name: String,
    /// `dataset.test.root_HR`: HR images, or a DIV2K-style folder with `HR/`
    /// (+ `LR/`) inside, read as `esr-ea bench --data` reads it.
    pub root_hr: PathBuf,
    /// `dataset.test.root_LR`: LR images paired by name; made by bicubic when absent.
    pub root_lr: Option<PathBuf>,
}

/// Where the later stages' settings sit in the file, for error messages.
const STEPS: &str = "nas, fully_train, benchmark_<Name>";

/// The benchmark sections the file's `pipeline:` names (their `ref:` links
/// are resolved like those of the sections esr-ea always reads).
pub(crate) fn named_benchmarks(raw: &Value) -> Vec<String> {
    raw.get("pipeline")
        .and_then(Value::as_sequence)
        .map(|steps| {
            steps
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| s.starts_with("benchmark_"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The stages after `nas`, read from `pipeline:` (default: search, then
/// fully train), with `fully_train.top_n` and each named benchmark section.
pub(crate) fn parse(
    r: &mut Reader,
    root: &Node,
    base_dir: &Path,
    scale: usize,
) -> Result<(Vec<PipelineStep>, usize, Vec<BenchmarkConfig>), ConfigError> {
    let top_n = match r.section(root, "fully_train")? {
        Some(ft) => match r.get(&ft, "top_n")? {
            Some(n) => r.count(&n, 1)?,
            None => 1,
        },
        None => 1,
    };
    let Some(list) = r.get(root, "pipeline")? else {
        return Ok((
            vec![PipelineStep::Nas, PipelineStep::FullyTrain],
            top_n,
            Vec::new(),
        ));
    };
    let names = r.list(&list, |item| {
        let name = r.string(item)?;
        if name == "nas" || name == "fully_train" || name.starts_with("benchmark_") {
            Ok((name, item.path.clone()))
        } else {
            Err(r.error(
                &item.path,
                format!(
                    "{} is not a stage esr-ea runs (stages: {STEPS})",
                    show(item.value)
                ),
            ))
        }
    })?;
    let mut steps = Vec::new();
    let mut benchmarks = Vec::new();
    for (i, (name, path)) in names.iter().enumerate() {
        let order_error = |what: &str| r.error(path, format!("\"{name}\" {what}"));
        match name.as_str() {
            "nas" if i != 0 => return Err(order_error("must be the first stage")),
            "nas" => steps.push(PipelineStep::Nas),
            "fully_train" if steps.last() != Some(&PipelineStep::Nas) => {
                return Err(order_error("must come right after nas"))
            }
            "fully_train" => steps.push(PipelineStep::FullyTrain),
            _ if i == 0 => {
                return Err(order_error(
                    "cannot come first: the pipeline starts with nas",
                ))
            }
            _ if !steps.contains(&PipelineStep::FullyTrain) => {
                return Err(order_error(
                    "needs fully_train before it (it scores the fully trained models)",
                ))
            }
            bench => {
                let set = benchmark(r, root, bench, base_dir, scale)?;
                steps.push(PipelineStep::Benchmark(set.name.clone()));
                benchmarks.push(set);
            }
        }
    }
    if steps.first() != Some(&PipelineStep::Nas) {
        return Err(r.error(&list.path, "the pipeline must start with nas"));
    }
    Ok((steps, top_n, benchmarks))
}

fn benchmark(
    r: &mut Reader,
    root: &Node,
    key: &str,
    base_dir: &Path,
    scale: usize,
) -> Result<BenchmarkConfig, ConfigError> {
    let name = key.trim_start_matches("benchmark_").to_string();
    if name.is_empty() {
        return Err(r.error(key, "a benchmark section needs a name: benchmark_<Name>"));
    }
    let section = r.section(root, key)?.ok_or_else(|| {
        r.error(
            key,
            "missing: the section named in pipeline (dataset: {test: {root_HR: FOLDER}})",
        )
    })?;
    let dataset = r.section(&section, "dataset")?.ok_or_else(|| {
        r.error(
            &section.key_path("dataset"),
            "missing: {test: {root_HR: FOLDER}}",
        )
    })?;
    let test = r.section(&dataset, "test")?.ok_or_else(|| {
        r.error(
            &dataset.key_path("test"),
            "missing: the benchmark images ({root_HR: FOLDER, root_LR: FOLDER})",
        )
    })?;
    let split = super::split::split(r, &test, base_dir, scale, DataSplit::test_defaults)?;
    Ok(BenchmarkConfig {
        name,
        root_hr: split.root_hr,
        root_lr: split.root_lr,
    })
}

/// `pipeline:`, `fully_train.top_n` and the benchmark sections as YAML
/// entries of the file's top level (for `Config::to_yaml`).
pub(crate) fn emit(
    steps: &[PipelineStep],
    benchmarks: &[BenchmarkConfig],
) -> (Value, Vec<(String, Value)>) {
    let names = steps.iter().map(|s| Value::from(s.name())).collect();
    let sections = benchmarks
        .iter()
        .map(|b| {
            let mut test = serde_yaml::Mapping::new();
            test.insert("root_HR".into(), b.root_hr.display().to_string().into());
            if let Some(lr) = &b.root_lr {
                test.insert("root_LR".into(), lr.display().to_string().into());
            }
            let mut dataset = serde_yaml::Mapping::new();
            dataset.insert("test".into(), Value::Mapping(test));
            let mut section = serde_yaml::Mapping::new();
            section.insert("dataset".into(), Value::Mapping(dataset));
            (format!("benchmark_{}", b.name), Value::Mapping(section))
        })
        .collect();
    (Value::Sequence(names), sections)
}
