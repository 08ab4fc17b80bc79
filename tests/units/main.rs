//! In-process tests: configuration, data, model, kernels, search operators, the
//! engine with a stand-in trainer, ONNX export, and the dashboard's buffers.
//!
//! One test binary per tier: linking each file as its own binary against
//! candle, ratatui, image and tract cost CI most of its time.

#[path = "../support/mod.rs"]
mod support;

mod compare_runs;
mod config_errors;
mod config_executor;
mod config_files;
mod config_values;
mod control_bytes;
mod data_assets;
mod data_cache;
mod data_dataset;
mod data_io;
mod data_patches;
mod data_vectors;
mod engine_control;
mod model_any_size;
mod model_checkpoint;
mod model_grad;
mod model_params;
mod model_reference;
mod model_tiled;
mod onnx_export;
mod ops_conv;
mod ops_cuda_kernels;
mod reference_costs;
mod search_evolution;
mod train_real;
mod tui_attach;
mod tui_keys;
mod tui_render;
mod tui_slurm_rows;
mod tui_walkthrough;
