//! Against a real one-node Slurm (`scripts/slurm-local.sh start`; `.ci/run`
//! starts one as root). Without one each test says `skipped:` on the
//! terminal, and fails where `ESR_EA_REQUIRE_SLURM=1` says Slurm should be up.
//!
//! One test binary per tier: linking each file as its own binary against
//! candle, ratatui, image and tract cost CI most of its time.

#[path = "../support/mod.rs"]
mod support;

mod slurm_executor;
