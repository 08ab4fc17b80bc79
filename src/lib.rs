//! esr-ea: evolutionary search for efficient residual dense block
//! super-resolution networks (ESR_EA, AAAI 2020).

pub mod config;
pub mod search;
pub mod space;
