//! esr-ea: evolutionary search for efficient residual dense block
//! super-resolution networks (ESR_EA, AAAI 2020).

pub mod model;
pub mod search;
pub mod space;
