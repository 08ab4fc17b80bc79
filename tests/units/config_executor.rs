//! The `executor:` section: local by default, Slurm settings read, checked,
//! and written back to the run's config.yaml.

use esr_ea::config::{Config, ExecutorConfig};

fn with_executor(block: &str) -> Result<esr_ea::config::Loaded, esr_ea::config::ConfigError> {
    let quick = include_str!("../../configs/quick.yaml");
    let base = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"));
    Config::from_yaml_str(&format!("{quick}\n{block}"), base, "test.yaml")
}

#[test]
fn local_unless_the_file_says_slurm() {
    let loaded = with_executor("").unwrap();
    assert_eq!(loaded.config.executor, ExecutorConfig::Local);
    let loaded = with_executor("executor: {type: local}").unwrap();
    assert_eq!(loaded.config.executor, ExecutorConfig::Local);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn slurm_settings_are_read_and_round_trip() {
    let loaded = with_executor(
        "executor:\n  type: slurm\n  partition: gpu\n  gres: gpu:1\n  cpus_per_task: 4\n  mem: 8G\n  time: \"00:30:00\"\n  account: lab\n  qos: normal\n  extra_args: [--constraint=a100, --exclusive]\n  max_in_flight: 16\n",
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let ExecutorConfig::Slurm(s) = &loaded.config.executor else {
        panic!("expected slurm, got {:?}", loaded.config.executor);
    };
    assert_eq!(s.partition.as_deref(), Some("gpu"));
    assert_eq!(s.cpus_per_task, Some(4));
    assert_eq!(s.max_in_flight, 16);
    assert_eq!(s.extra_args, vec!["--constraint=a100", "--exclusive"]);
    assert_eq!(
        s.job_device(),
        "cuda:0",
        "a GPU gres trains on the job's GPU"
    );
    let yaml = loaded.config.to_yaml();
    let again = Config::from_yaml_str(&yaml, std::path::Path::new("/"), "again").unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    assert_eq!(again.config.executor, loaded.config.executor);
}

#[test]
fn bad_executor_values_are_one_line_errors() {
    let e = with_executor("executor: {type: kubernetes}")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("executor.type") && e.contains("local, slurm"),
        "{e}"
    );
    let e = with_executor("executor: {type: slurm, max_in_flight: 0}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("executor.max_in_flight"), "{e}");
    let e = with_executor("executor: {partition: gpu}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("executor.type") && e.contains("missing"), "{e}");
}
