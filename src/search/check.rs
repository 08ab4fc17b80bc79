//! The meaning of a saved state, checked before a search continues from it:
//! a hand-edited or damaged `state.json` that parses can still make no sense
//! (an empty generation, a generation past the last, ids that would be
//! reused and overwrite another member's weights).

use std::collections::HashSet;

use super::{Problem, SearchError, SearchState};

/// Errors, in one line naming the field, its value and what is allowed, when
/// `state` cannot be the state of a search of `problem`.
pub fn check_state(problem: &Problem, state: &SearchState) -> Result<(), SearchError> {
    let bad = |msg: String| Err(SearchError::StateMismatch(format!("state.json: {msg}")));
    let generations = problem.policy.num_generation;
    if state.generation >= generations {
        return bad(format!(
            "generation {} is beyond the config's {generations} generations (allowed: 0 to {})",
            state.generation,
            generations.saturating_sub(1)
        ));
    }
    if !state.finished && state.population.is_empty() {
        return bad(format!(
            "population is empty in generation {} (an unfinished search has its generation's members, {} here)",
            state.generation, problem.policy.num_individual
        ));
    }
    if state.summaries.len() > state.generation + 1 {
        return bad(format!(
            "{} generation summaries for generation {} (allowed: at most {})",
            state.summaries.len(),
            state.generation,
            state.generation + 1
        ));
    }
    let mut ids = HashSet::new();
    for m in &state.population {
        if !ids.insert(m.id) {
            return bad(format!(
                "member id {} appears twice in the population (ids are unique)",
                m.id
            ));
        }
        if m.generation != state.generation {
            return bad(format!(
                "member #{} of the population has generation {} but the state is at generation {}",
                m.id, m.generation, state.generation
            ));
        }
    }
    let highest = state
        .population
        .iter()
        .chain(&state.elites)
        .chain(&state.history)
        .map(|m| m.id)
        .max();
    if let Some(highest) = highest {
        if state.next_id <= highest {
            return bad(format!(
                "next_id {} is not above every member id (highest #{highest}; allowed: {} or more), so ids and their models/<id>.safetensors would be reused",
                state.next_id,
                highest + 1
            ));
        }
    }
    if state.elites.len() > problem.policy.num_elitism {
        return bad(format!(
            "{} elites, more than the config's num_elitism {}",
            state.elites.len(),
            problem.policy.num_elitism
        ));
    }
    if let Some(e) = state.elites.iter().find(|e| e.fitness().is_none()) {
        return bad(format!(
            "elite #{} has no fitness (elites are evaluated members)",
            e.id
        ));
    }
    Ok(())
}
