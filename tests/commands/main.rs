//! The binary as a user runs it: each test starts `esr-ea` subprocesses on
//! real files (tiny photos and configs) and checks their output and files.
//!
//! One test binary per tier: linking each file as its own binary against
//! candle, ratatui, image and tract cost CI most of its time.

#[path = "../support/mod.rs"]
mod support;

mod check_reports_all;
mod cli_commands;
mod common_random_numbers;
mod compare_cli;
mod data_cache_processes;
mod device_check_cli;
mod evaluate_job;
mod fault_matrix_misc;
mod median_stop;
mod onnx_cli;
mod pipeline_stages;
mod recorded_run;
mod report_files;
mod run_lock;
mod search_bicubic;
mod search_e2e;
mod search_latency;
mod speed_command;
mod state_export_checks;
mod storage_faults;
mod study_cli;
mod thread_invariance;
mod upscale_memory;
