//! Checks a hand-typed gene list before anything is sent to the engine, with
//! the same rules the engine applies (so a rejected list is explained inline
//! instead of turning up later as a warning in the log).

use crate::format::thousands;
use crate::search::{HandGenesError, Problem};
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
    match problem.hand_individual(&genes) {
        Ok((_, params)) => Ok(Checked { genes, params }),
        Err(HandGenesError::Invalid(why)) => Err(why),
        Err(HandGenesError::TooFew { active, min_active }) => Err(format!(
            "{active} blocks are too few: the search needs at least min_active = {min_active}"
        )),
        Err(HandGenesError::OutsideBudget { params, min, max }) => {
            let side = if params < min { "below" } else { "above" };
            Err(format!(
                "{} params are {side} the budget {}..{}",
                thousands(params),
                thousands(min),
                thousands(max)
            ))
        }
    }
}
