//! esr-ea: evolutionary search for efficient residual dense block
//! super-resolution networks (ESR_EA, AAAI 2020).

pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod engine;
pub mod format;
pub mod fsutil;
pub mod latency;
pub mod measure;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod ops;
pub mod report;
pub mod search;
pub mod seeds;
pub mod space;
pub mod study;
pub mod train;
pub mod tui;
