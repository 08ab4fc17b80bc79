//! The fixed part of a search: the choice table, the constraints and fast
//! exact parameter counts for individuals.

use std::collections::HashMap;

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::Rng;

use super::individual::{Individual, Slot};
use super::{Policy, Range, SearchError};
use crate::space::cost::{block_convs, Resolution};
use crate::space::{Arch, Choice, GeneList, SearchSpace};

/// How many repair rounds are tried before a constraint is declared unreachable.
/// A round costs microseconds, so this bounds a repair to well under a second.
pub const MAX_REPAIR_ROUNDS: usize = 200_000;

/// Everything about a search that does not change while it runs.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The search space (`esrbody`).
    pub space: SearchSpace,
    /// The evolution's shape.
    pub policy: Policy,
    /// The constraints.
    pub range: Range,
    /// The choice table in reference order.
    pub table: Vec<Choice>,
    sampler: WeightedIndex<f64>,
    /// Params of the shallow features, fusion (without inputs) and upsampler.
    stem_params: u64,
    /// Params of each choice given its input channels, plus its share of the fusion conv.
    block_params: HashMap<(usize, usize), u64>,
}

/// How many rounds a repair took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RepairRounds {
    /// Rounds of flipping used bits.
    pub depth: usize,
    /// Rounds of resampling choices.
    pub budget: usize,
}

/// What drawing and repairing random individuals costs for these constraints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepairCost {
    /// Individuals drawn.
    pub samples: usize,
    /// Mean budget-repair rounds per individual.
    pub mean_rounds: f64,
    /// Most rounds any one needed.
    pub max_rounds: usize,
    /// Mean wall time per individual, in milliseconds.
    pub mean_millis: f64,
}

/// Parameters reachable by networks of a given depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// Number of blocks.
    pub depth: usize,
    /// Smallest exact parameter count at that depth.
    pub min: u64,
    /// Largest exact parameter count at that depth.
    pub max: u64,
}

impl Problem {
    /// Sets up a search and checks that its constraints can be met at all.
    pub fn new(space: SearchSpace, policy: Policy, range: Range) -> Result<Problem, SearchError> {
        check_shape(&policy, &range)?;
        let table = space.choices();
        if table.is_empty() {
            return Err(SearchError::Infeasible(
                "the choice table is empty: block_type, conv_num and growth_rate allow no block"
                    .into(),
            ));
        }
        let sampler = WeightedIndex::new(table.iter().map(|c| c.weight)).map_err(|e| {
            SearchError::Infeasible(format!(
                "the choice weights (type_prob × conv_prob × growth_prob²) cannot be sampled: {e}"
            ))
        })?;
        let stem_params = space.arch(GeneList::default()).cost().params;
        let mut channels: Vec<usize> = space.growth_rate.clone();
        channels.push(space.g0);
        channels.sort_unstable();
        channels.dedup();
        let res = Resolution::for_scale(space.scale);
        let mut block_params = HashMap::new();
        for &in_ch in &channels {
            for (i, choice) in table.iter().enumerate() {
                let own: u64 = block_convs(&choice.gene, in_ch, res)
                    .iter()
                    .map(|c| c.params(space.bias))
                    .sum();
                let fusion_share = (choice.gene.out * space.g0) as u64;
                block_params.insert((in_ch, i), own + fusion_share);
            }
        }
        let problem = Problem {
            space,
            policy,
            range,
            table,
            sampler,
            stem_params,
            block_params,
        };
        problem.check_budget()?;
        Ok(problem)
    }

    /// Exact parameter count of an individual's network.
    pub fn params(&self, individual: &Individual) -> u64 {
        let mut in_ch = self.space.g0;
        let mut total = self.stem_params;
        for slot in individual.slots.iter().filter(|s| s.used) {
            total += self.block_params[&(in_ch, slot.choice)];
            in_ch = self.table[slot.choice].gene.out;
        }
        total
    }

    /// The network an individual encodes.
    pub fn arch(&self, individual: &Individual) -> Arch {
        self.space.arch(individual.genes(&self.table))
    }

    /// True when the individual meets depth and budget.
    pub fn is_valid(&self, individual: &Individual) -> bool {
        individual.slots.len() == self.range.node_num
            && individual.active() >= self.range.min_active
            && self.in_budget(self.params(individual))
    }

    fn in_budget(&self, params: u64) -> bool {
        (self.range.min_params..=self.range.max_params).contains(&params)
    }

    /// Draws a choice index from the weighted table.
    pub fn sample_choice<R: Rng>(&self, rng: &mut R) -> usize {
        self.sampler.sample(rng)
    }

    /// A fresh individual as the reference draws it: fair coin per used bit,
    /// weighted choice per slot, then repaired.
    pub fn random_individual<R: Rng>(&self, rng: &mut R) -> Result<Individual, SearchError> {
        let slots = (0..self.range.node_num)
            .map(|_| Slot {
                used: rng.random_bool(0.5),
                choice: self.sample_choice(rng),
            })
            .collect();
        let mut individual = Individual { slots };
        self.repair(&mut individual, rng)?;
        Ok(individual)
    }

    /// Draws `samples` random individuals and measures their repair.
    pub fn measure_repair(&self, samples: usize, seed: u64) -> Result<RepairCost, SearchError> {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let start = std::time::Instant::now();
        let mut total = 0;
        let mut max_rounds = 0;
        for _ in 0..samples {
            let slots = (0..self.range.node_num)
                .map(|_| Slot {
                    used: rng.random_bool(0.5),
                    choice: self.sample_choice(&mut rng),
                })
                .collect();
            let rounds = self.repair(&mut Individual { slots }, &mut rng)?;
            total += rounds.budget;
            max_rounds = max_rounds.max(rounds.budget);
        }
        let n = samples.max(1) as f64;
        Ok(RepairCost {
            samples,
            mean_rounds: total as f64 / n,
            max_rounds,
            mean_millis: start.elapsed().as_secs_f64() * 1000.0 / n,
        })
    }

    /// Flips every slot's used bit with probability `mutation_rate`.
    pub fn flip_used<R: Rng>(&self, individual: &mut Individual, rng: &mut R) {
        for slot in &mut individual.slots {
            if rng.random_bool(self.policy.mutation_rate) {
                slot.used = !slot.used;
            }
        }
    }

    /// Resamples the choice of every used slot with probability `mutation_rate`.
    pub fn resample_used<R: Rng>(&self, individual: &mut Individual, rng: &mut R) {
        for i in 0..individual.slots.len() {
            if individual.slots[i].used && rng.random_bool(self.policy.mutation_rate) {
                individual.slots[i].choice = self.sample_choice(rng);
            }
        }
    }

    /// Repairs depth (flip used bits until `min_active` slots are used), then
    /// budget (resample used choices until the params are in range), as the
    /// reference does, but with a bound instead of an endless loop.
    pub fn repair<R: Rng>(
        &self,
        individual: &mut Individual,
        rng: &mut R,
    ) -> Result<RepairRounds, SearchError> {
        Ok(RepairRounds {
            depth: self.repair_depth(individual, rng)?,
            budget: self.repair_budget(individual, rng)?,
        })
    }

    /// Flips used bits until at least `min_active` slots are used.
    pub fn repair_depth<R: Rng>(
        &self,
        individual: &mut Individual,
        rng: &mut R,
    ) -> Result<usize, SearchError> {
        let mut rounds = 0;
        while individual.active() < self.range.min_active {
            if rounds == MAX_REPAIR_ROUNDS {
                return Err(SearchError::Unreachable(format!(
                    "after {MAX_REPAIR_ROUNDS} rounds of flipping used bits at mutation_rate {}, \
                     fewer than min_active = {} of node_num = {} slots are used; raise mutation_rate \
                     or lower min_active",
                    self.policy.mutation_rate, self.range.min_active, self.range.node_num
                )));
            }
            // With mutation_rate 0 nothing would ever change: flip at least one unused slot.
            if self.policy.mutation_rate == 0.0 {
                if let Some(slot) = individual.slots.iter_mut().find(|s| !s.used) {
                    slot.used = true;
                }
            } else {
                self.flip_used(individual, rng);
            }
            rounds += 1;
        }
        Ok(rounds)
    }

    /// Resamples used choices until the exact params are within the budget.
    pub fn repair_budget<R: Rng>(
        &self,
        individual: &mut Individual,
        rng: &mut R,
    ) -> Result<usize, SearchError> {
        let mut rounds = 0;
        while !self.in_budget(self.params(individual)) {
            if rounds == MAX_REPAIR_ROUNDS {
                return Err(SearchError::Unreachable(format!(
                    "after {MAX_REPAIR_ROUNDS} rounds of resampling blocks, no network of {} blocks fell \
                     inside {}..{} params (the last had {}); widen the budget or change the choice lists",
                    individual.active(),
                    self.range.min_params,
                    self.range.max_params,
                    self.params(individual)
                )));
            }
            if self.policy.mutation_rate == 0.0 {
                for slot in individual.slots.iter_mut().filter(|s| s.used) {
                    slot.choice = self.sampler.sample(rng);
                }
            } else {
                self.resample_used(individual, rng);
            }
            rounds += 1;
        }
        Ok(rounds)
    }

    /// Smallest and largest exact parameter counts of networks of each depth
    /// from `min_active` to `node_num` (dynamic programming over the block
    /// sequence, since a block's cost depends on its predecessor's width).
    pub fn reach(&self) -> Vec<Reach> {
        let mut channels: Vec<usize> = self.block_params.keys().map(|k| k.0).collect();
        channels.sort_unstable();
        channels.dedup();
        let index = |ch: usize| channels.iter().position(|&c| c == ch).unwrap();
        let unreached = (u64::MAX, 0u64);
        // best[ch] = (min, max) params of block sequences ending in width ch.
        let mut best = vec![unreached; channels.len()];
        best[index(self.space.g0)] = (self.stem_params, self.stem_params);
        let mut out = Vec::new();
        for depth in 1..=self.range.node_num {
            let mut next = vec![unreached; channels.len()];
            for (ci, &(lo, hi)) in best.iter().enumerate() {
                if lo == u64::MAX {
                    continue;
                }
                for (choice, c) in self.table.iter().enumerate() {
                    let p = self.block_params[&(channels[ci], choice)];
                    let slot = &mut next[index(c.gene.out)];
                    slot.0 = slot.0.min(lo + p);
                    slot.1 = slot.1.max(hi + p);
                }
            }
            best = next;
            if depth >= self.range.min_active {
                let min = best.iter().map(|b| b.0).min().unwrap_or(u64::MAX);
                let max = best.iter().map(|b| b.1).max().unwrap_or(0);
                out.push(Reach { depth, min, max });
            }
        }
        out
    }

    fn check_budget(&self) -> Result<(), SearchError> {
        let reach = self.reach();
        let lowest = reach.iter().map(|r| r.min).min().unwrap_or(0);
        let highest = reach.iter().map(|r| r.max).max().unwrap_or(0);
        let r = &self.range;
        let span = format!(
            "networks of {}..{} blocks reach {lowest}..{highest} params",
            r.min_active, r.node_num
        );
        if r.max_params < lowest {
            return Err(SearchError::Infeasible(format!(
                "max_params = {} is below the smallest network of min_active = {} blocks ({lowest} params); {span}",
                r.max_params, r.min_active
            )));
        }
        if r.min_params > highest {
            return Err(SearchError::Infeasible(format!(
                "min_params = {} is above the largest network of node_num = {} blocks ({highest} params); {span}",
                r.min_params, r.node_num
            )));
        }
        Ok(())
    }
}

fn check_shape(policy: &Policy, range: &Range) -> Result<(), SearchError> {
    let fail = |msg: String| Err(SearchError::Infeasible(msg));
    if range.node_num < 10 {
        return fail(format!(
            "node_num = {} is below 10: crossover swaps a run of 4..node_num/2 slots, which needs node_num >= 10",
            range.node_num
        ));
    }
    if range.min_active > range.node_num {
        return fail(format!(
            "min_active = {} is larger than node_num = {}: an individual cannot use more slots than it has",
            range.min_active, range.node_num
        ));
    }
    if range.min_active == 0 {
        return fail("min_active = 0: a network needs at least one block".into());
    }
    if range.min_params > range.max_params {
        return fail(format!(
            "min_params = {} is larger than max_params = {}",
            range.min_params, range.max_params
        ));
    }
    if policy.num_individual == 0 {
        return fail("num_individual = 0: a generation needs at least one individual".into());
    }
    if policy.num_elitism == 0 {
        return fail(
            "num_elitism = 0: mutation children are copied from elites, keep at least one".into(),
        );
    }
    if policy.num_elitism > policy.num_individual {
        return fail(format!(
            "num_elitism = {} is larger than num_individual = {}",
            policy.num_elitism, policy.num_individual
        ));
    }
    if !(0.0..=1.0).contains(&policy.mutation_rate) || policy.mutation_rate.is_nan() {
        return fail(format!(
            "mutation_rate = {} is outside 0..1",
            policy.mutation_rate
        ));
    }
    Ok(())
}
