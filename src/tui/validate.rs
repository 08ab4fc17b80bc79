//! Checks a hand-typed gene list before anything is sent to the engine, with
//! the same rules the engine applies (so a rejected list is explained inline
//! instead of turning up later as a warning in the log).

use crate::search::{Individual, Problem};
use crate::space::GeneList;

/// A gene list that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The parsed genes.
    pub genes: GeneList,
    /// Their exact parameter count.
    pub params: u64,
}

/// Parses and checks typed genes (`S_4_16_24 G_8_16_24`, commas and a
/// Python-style list work too): syntax, the search space, `node_num`,
/// `min_active` and the parameter budget. The error is one line saying what
/// is wrong and what is allowed.
pub fn check_genes(problem: &Problem, text: &str) -> Result<Checked, String> {
    let genes = GeneList::parse_args(&[text]).map_err(|e| e.to_string())?;
    problem
        .space
        .validate_genes(&genes)
        .map_err(|e| e.to_string())?;
    let individual = Individual::from_genes(&genes, &problem.table, problem.range.node_num)
        .map_err(|e| e.to_string())?;
    let range = &problem.range;
    if individual.active() < range.min_active {
        return Err(format!(
            "{} blocks are too few: the search needs at least min_active = {}",
            individual.active(),
            range.min_active
        ));
    }
    let params = problem.params(&individual);
    if params < range.min_params || params > range.max_params {
        let side = if params < range.min_params {
            "below"
        } else {
            "above"
        };
        return Err(format!(
            "{} params are {side} the budget {}..{}",
            super::format::thousands(params),
            super::format::thousands(range.min_params),
            super::format::thousands(range.max_params)
        ));
    }
    Ok(Checked { genes, params })
}
