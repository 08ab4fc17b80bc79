//! esr-ea: evolutionary search for efficient residual dense block
//! super-resolution networks (ESR_EA, AAAI 2020).

pub mod data;
pub mod metrics;
pub mod search;
pub mod space;
