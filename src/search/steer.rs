//! Steering by hand: members injected or mutated by the user, checked with
//! the rules the search applies to its own.

use super::individual::Individual;
use super::{Origin, Problem, Search, Status};
use crate::space::GeneList;

/// Why a hand-given gene list cannot join the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandGenesError {
    /// Not in the search space, or more blocks than `node_num` slots.
    Invalid(String),
    /// Fewer blocks than `min_active`.
    TooFew {
        /// Blocks given.
        active: usize,
        /// Blocks needed.
        min_active: usize,
    },
    /// Exact parameters outside the budget.
    OutsideBudget {
        /// The list's parameters.
        params: u64,
        /// Budget, inclusive.
        min: u64,
        /// Budget, inclusive.
        max: u64,
    },
}

impl Problem {
    /// Checks a hand-given gene list with the rules the search's own members
    /// obey (space, `node_num`, `min_active`, budget); the individual and its
    /// exact parameters when it passes. The one check behind `inject`,
    /// `mutate` and the dashboard's inject prompt.
    pub fn hand_individual(&self, genes: &GeneList) -> Result<(Individual, u64), HandGenesError> {
        self.space
            .validate_genes(genes)
            .map_err(|e| HandGenesError::Invalid(e.to_string()))?;
        let individual = Individual::from_genes(genes, &self.table, self.range.node_num)
            .map_err(|e| HandGenesError::Invalid(e.to_string()))?;
        let r = &self.range;
        if individual.active() < r.min_active {
            return Err(HandGenesError::TooFew {
                active: individual.active(),
                min_active: r.min_active,
            });
        }
        let params = self.params(&individual);
        if params < r.min_params || params > r.max_params {
            return Err(HandGenesError::OutsideBudget {
                params,
                min: r.min_params,
                max: r.max_params,
            });
        }
        Ok((individual, params))
    }
}

impl Search {
    /// Checks a hand-given gene list against the space, `node_num` and the budget.
    pub fn hand_individual(&self, genes: &GeneList) -> Result<Individual, String> {
        self.problem
            .hand_individual(genes)
            .map(|(individual, _)| individual)
            .map_err(|e| match e {
                HandGenesError::Invalid(why) => why,
                HandGenesError::TooFew { active, min_active } => {
                    format!("{active} blocks are fewer than min_active = {min_active}")
                }
                HandGenesError::OutsideBudget { params, min, max } => {
                    format!("{params} params are outside the budget {min}..{max}")
                }
            })
    }

    /// Adds a hand-made member to the current generation; returns its id.
    pub fn inject(&mut self, genes: &GeneList) -> Result<u64, String> {
        if self.state.finished {
            return Err("the search has finished".into());
        }
        let individual = self.hand_individual(genes)?;
        let member = self.new_member(individual, Origin::Injected);
        let id = member.id;
        self.state.population.push(member);
        let index = self.state.population.len() - 1;
        self.resolve_from_cache(index);
        Ok(id)
    }

    /// Changes a queued member by hand: re-samples its genes with the search's
    /// own mutation and repair (`genes = None`) or sets the given list.
    pub fn hand_mutate(&mut self, id: u64, genes: Option<&GeneList>) -> Result<(), String> {
        let index = self
            .member_index(id)
            .ok_or_else(|| format!("no member {id} in the current generation"))?;
        if self.state.population[index].status != Status::Pending {
            return Err(format!(
                "member {id} is {}: only queued members can be changed",
                self.state.population[index].status.name()
            ));
        }
        let individual = match genes {
            Some(genes) => self.hand_individual(genes)?,
            None => {
                let mut child = self.state.population[index].individual.clone();
                let before = child.clone();
                let rng = &mut self.state.rng;
                // Mutate until something changes, so the key press is never a no-op.
                for _ in 0..1000 {
                    self.problem.flip_used(&mut child, rng);
                    self.problem.resample_used(&mut child, rng);
                    self.problem
                        .repair(&mut child, rng)
                        .map_err(|e| e.to_string())?;
                    if child.genes(&self.problem.table) != before.genes(&self.problem.table) {
                        break;
                    }
                }
                child
            }
        };
        let was = self.state.population[index].origin.clone();
        let origin = match was {
            Origin::HandMutated { .. } | Origin::Injected => was,
            other => Origin::HandMutated {
                was: Box::new(other),
            },
        };
        let genes = individual.genes(&self.problem.table);
        let cost = self.problem.space.arch(genes.clone()).cost();
        let member = &mut self.state.population[index];
        member.individual = individual;
        member.genes = genes;
        member.params = cost.params;
        member.multi_adds = cost.multi_adds;
        member.origin = origin;
        self.resolve_from_cache(index);
        Ok(())
    }
}
