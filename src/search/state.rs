//! The search state and the generation loop (spec §3).
//!
//! The state is a plain serialisable value: the engine evaluates pending
//! members in any order (on any number of workers), records outcomes, and
//! calls [`Search::advance`] when a generation is complete. Restored from
//! JSON, it continues bit-identically because the RNG state is part of it.

use std::collections::BTreeMap;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::individual::Individual;
use super::problem::Problem;
use super::{SearchError, Selection};
use crate::space::{GeneList, SearchSpace};

/// What a finished quick-training of one network measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Validation PSNR (Y, dB): the fitness.
    pub psnr: f64,
    /// Validation SSIM (Y).
    pub ssim: f64,
    /// Training loss at the end, when known.
    pub final_loss: Option<f64>,
    /// Wall time of training plus validation, in seconds.
    pub seconds: f64,
}

/// How a member came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// Drawn at random for the first generation.
    Initial,
    /// Mutated copy of an elite.
    Mutation {
        /// The elite it was copied from.
        parent: u64,
    },
    /// Child of a crossover.
    Crossover {
        /// Both parents.
        parents: [u64; 2],
    },
    /// Added by hand (inject).
    Injected,
    /// Changed by hand before training (mutate).
    HandMutated {
        /// What it was before.
        was: Box<Origin>,
    },
}

impl Origin {
    /// True for members a person made or changed.
    pub fn is_hand_made(&self) -> bool {
        matches!(self, Origin::Injected | Origin::HandMutated { .. })
    }
}

/// Where a member stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Waiting to be trained.
    Pending,
    /// Trained and validated.
    Evaluated(Evaluation),
    /// The same architecture was evaluated before: its result is reused.
    Cached(Evaluation),
    /// Training failed (non-finite loss, out of memory, …).
    Failed {
        /// Why.
        reason: String,
    },
    /// Stopped by hand: no fitness.
    Killed,
}

impl Status {
    /// The fitness, when the member has one.
    pub fn fitness(&self) -> Option<f64> {
        match self {
            Status::Evaluated(e) | Status::Cached(e) => Some(e.psnr),
            _ => None,
        }
    }

    /// True when nothing more will happen to this member.
    pub fn is_done(&self) -> bool {
        !matches!(self, Status::Pending)
    }

    /// Short lower-case name for tables and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "queued",
            Status::Evaluated(_) => "done",
            Status::Cached(_) => "cached",
            Status::Failed { .. } => "failed",
            Status::Killed => "killed",
        }
    }
}

/// One individual of a generation with its network and result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Unique within the run.
    pub id: u64,
    /// Generation it was evaluated in.
    pub generation: usize,
    /// Its genotype.
    pub individual: Individual,
    /// The network's blocks.
    pub genes: GeneList,
    /// Exact trainable values.
    pub params: u64,
    /// Multi-Adds at 720p output.
    pub multi_adds: u64,
    /// How it was made.
    pub origin: Origin,
    /// Where it stands.
    pub status: Status,
}

impl Member {
    /// The cache key: the active architecture.
    pub fn key(&self) -> String {
        self.genes.to_string()
    }

    /// The fitness, when the member has one.
    pub fn fitness(&self) -> Option<f64> {
        self.status.fitness()
    }
}

/// Everything a search needs to continue: serialise it, restore it, go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchState {
    /// The generation being evaluated (0-based).
    pub generation: usize,
    /// Members of the current generation.
    pub population: Vec<Member>,
    /// The best members so far, best first, at most `num_elitism`.
    pub elites: Vec<Member>,
    /// Every member whose evaluation finished, in order of finishing.
    pub history: Vec<Member>,
    /// Results by architecture, so no architecture is trained twice.
    pub cache: BTreeMap<String, Evaluation>,
    /// How many members reused a cached result.
    pub cache_hits: u64,
    /// Next member id.
    pub next_id: u64,
    /// True once the last generation is complete.
    pub finished: bool,
    /// The evolution's random state.
    pub rng: ChaCha8Rng,
    /// One summary per completed generation.
    #[serde(default)]
    pub summaries: Vec<GenerationSummary>,
}

/// A summary of one completed generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSummary {
    /// Which generation (0-based).
    pub generation: usize,
    /// Best fitness in this generation, if any member got one.
    pub best: Option<f64>,
    /// Mean fitness of members with one.
    pub mean: Option<f64>,
    /// Elites after this generation.
    pub elites: Vec<Member>,
}

/// Anything that turns a network into a fitness: real training in the
/// application, a cheap stand-in in tests.
pub trait Evaluator {
    /// Quick-trains and validates the network of `member`.
    fn evaluate(&mut self, problem: &Problem, member: &Member) -> Result<Evaluation, String>;
}

/// A running search: the fixed problem plus its state.
#[derive(Debug, Clone)]
pub struct Search {
    /// What is searched.
    pub problem: Problem,
    /// Where the search stands.
    pub state: SearchState,
}

impl Search {
    /// Starts a search: checks the constraints and draws the first generation.
    pub fn new(problem: Problem, seed: u64) -> Result<Search, SearchError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut individuals = Vec::with_capacity(problem.policy.num_individual);
        for _ in 0..problem.policy.num_individual {
            individuals.push(problem.random_individual(&mut rng)?);
        }
        let mut search = Search {
            problem,
            state: SearchState {
                generation: 0,
                population: Vec::new(),
                elites: Vec::new(),
                history: Vec::new(),
                cache: BTreeMap::new(),
                cache_hits: 0,
                next_id: 0,
                finished: false,
                rng,
                summaries: Vec::new(),
            },
        };
        search.set_population(
            individuals
                .into_iter()
                .map(|i| (i, Origin::Initial))
                .collect(),
        );
        Ok(search)
    }

    /// Continues from a saved state.
    pub fn resume(problem: Problem, state: SearchState) -> Result<Search, SearchError> {
        super::check::check_state(&problem, &state)?;
        for member in state.population.iter().chain(&state.elites) {
            if member.individual.slots.len() != problem.range.node_num {
                return Err(SearchError::StateMismatch(format!(
                    "member {} has {} slots but the config's node_num is {}",
                    member.id,
                    member.individual.slots.len(),
                    problem.range.node_num
                )));
            }
            if let Some(bad) = member
                .individual
                .slots
                .iter()
                .find(|s| s.choice >= problem.table.len())
            {
                return Err(SearchError::StateMismatch(format!(
                    "member {} uses choice {} but the config's choice table has {} entries",
                    member.id,
                    bad.choice,
                    problem.table.len()
                )));
            }
        }
        Ok(Search { problem, state })
    }

    /// The search space.
    pub fn space(&self) -> &SearchSpace {
        &self.problem.space
    }

    fn new_member(&mut self, individual: Individual, origin: Origin) -> Member {
        let genes = individual.genes(&self.problem.table);
        let cost = self.problem.space.arch(genes.clone()).cost();
        let id = self.state.next_id;
        self.state.next_id += 1;
        Member {
            id,
            generation: self.state.generation,
            individual,
            genes,
            params: cost.params,
            multi_adds: cost.multi_adds,
            origin,
            status: Status::Pending,
        }
    }

    fn set_population(&mut self, individuals: Vec<(Individual, Origin)>) {
        self.state.population.clear();
        for (individual, origin) in individuals {
            let member = self.new_member(individual, origin);
            self.state.population.push(member);
        }
        let pending: Vec<usize> = (0..self.state.population.len()).collect();
        for i in pending {
            self.resolve_from_cache(i);
        }
    }

    /// Marks a pending member as cached when its architecture was evaluated before.
    fn resolve_from_cache(&mut self, index: usize) {
        let member = &self.state.population[index];
        if member.status != Status::Pending {
            return;
        }
        if let Some(eval) = self.state.cache.get(&member.key()).cloned() {
            self.state.population[index].status = Status::Cached(eval);
            self.state.cache_hits += 1;
            let done = self.state.population[index].clone();
            self.state.history.push(done);
        }
    }

    /// Index of the next member to train, skipping architectures already
    /// being trained (`busy` keys), so duplicates wait for the cache.
    pub fn next_pending(&self, busy: &[String]) -> Option<usize> {
        self.state
            .population
            .iter()
            .position(|m| m.status == Status::Pending && !busy.contains(&m.key()))
    }

    /// Finds a member of the current generation by id.
    pub fn member_index(&self, id: u64) -> Option<usize> {
        self.state.population.iter().position(|m| m.id == id)
    }

    /// Records how a member's evaluation ended. Evaluations fill the cache and
    /// resolve pending duplicates. Recording a member that is already done
    /// (e.g. killed meanwhile) is ignored and returns false.
    pub fn record(&mut self, id: u64, status: Status) -> bool {
        let Some(index) = self.member_index(id) else {
            return false;
        };
        if self.state.population[index].status.is_done() || status == Status::Pending {
            return false;
        }
        if let Status::Evaluated(eval) = &status {
            let key = self.state.population[index].key();
            self.state.cache.insert(key, eval.clone());
        }
        self.state.population[index].status = status;
        let done = self.state.population[index].clone();
        self.state.history.push(done);
        for i in 0..self.state.population.len() {
            self.resolve_from_cache(i);
        }
        true
    }

    /// True when every member of the current generation is done.
    pub fn generation_complete(&self) -> bool {
        self.state.population.iter().all(|m| m.status.is_done())
    }

    /// Elitism, then reproduction (unless this was the last generation).
    ///
    /// # Panics
    /// When called before [`Search::generation_complete`].
    pub fn advance(&mut self) -> GenerationSummary {
        assert!(
            self.generation_complete(),
            "advance() before the generation is complete"
        );
        let fits: Vec<f64> = self
            .state
            .population
            .iter()
            .filter_map(Member::fitness)
            .collect();
        let best = fits.iter().cloned().reduce(f64::max);
        let mean = (!fits.is_empty()).then(|| fits.iter().sum::<f64>() / fits.len() as f64);
        self.update_elites();
        let summary = GenerationSummary {
            generation: self.state.generation,
            best,
            mean,
            elites: self.state.elites.clone(),
        };
        self.state.summaries.push(summary.clone());
        if self.state.generation + 1 >= self.problem.policy.num_generation {
            self.state.finished = true;
        } else {
            let children = self.reproduce();
            self.state.generation += 1;
            self.set_population(children);
        }
        summary
    }

    /// Of the elites and this generation's members, keeps the E fittest
    /// distinct architectures (members without fitness never become elites;
    /// a repeated architecture counts once; ties keep the older).
    fn update_elites(&mut self) {
        let mut pool: Vec<Member> = self.state.elites.clone();
        for m in &self.state.population {
            if m.fitness().is_some() && !pool.iter().any(|e| e.id == m.id || e.key() == m.key()) {
                pool.push(m.clone());
            }
        }
        pool.sort_by(|a, b| {
            let (fa, fb) = (a.fitness().unwrap(), b.fitness().unwrap());
            fb.total_cmp(&fa).then(a.id.cmp(&b.id))
        });
        pool.truncate(self.problem.policy.num_elitism);
        self.state.elites = pool;
    }

    /// The next generation's genotypes (spec §3 step 3).
    fn reproduce(&mut self) -> Vec<(Individual, Origin)> {
        let n = self.problem.policy.num_individual;
        let pairs = n / 4;
        let mutants = n - 2 * pairs;
        let mut children = Vec::with_capacity(n);
        for i in 0..mutants {
            children.push(self.mutation_child(i));
        }
        for _ in 0..pairs {
            let (a, b) = self.crossover_pair();
            children.push(a);
            children.push(b);
        }
        children
    }

    fn mutation_child(&mut self, i: usize) -> (Individual, Origin) {
        let elites = &self.state.elites;
        let rng = &mut self.state.rng;
        let parent = if elites.is_empty() {
            None
        } else if self.problem.policy.num_individual / 2 == self.problem.policy.num_elitism {
            Some(&elites[i % elites.len()])
        } else {
            elites.choose(rng)
        };
        let Some(parent) = parent else {
            // Every member of the first generation failed: start again at random.
            return match self.problem.random_individual(rng) {
                Ok(ind) => (ind, Origin::Initial),
                Err(_) => (
                    self.state.population[i % self.state.population.len()]
                        .individual
                        .clone(),
                    Origin::Initial,
                ),
            };
        };
        let mut child = parent.individual.clone();
        let origin = Origin::Mutation { parent: parent.id };
        self.problem.flip_used(&mut child, rng);
        let ok = self.problem.repair_depth(&mut child, rng).is_ok() && {
            self.problem.resample_used(&mut child, rng);
            self.problem.repair_budget(&mut child, rng).is_ok()
        };
        if ok {
            (child, origin)
        } else {
            (parent.individual.clone(), origin)
        }
    }

    /// Crossover candidates: elites and the current population, with fitness.
    fn crossover_pair(&mut self) -> ((Individual, Origin), (Individual, Origin)) {
        let mut candidates: Vec<&Member> = self.state.elites.iter().collect();
        for m in &self.state.population {
            if m.fitness().is_some() && !candidates.iter().any(|c| c.id == m.id) {
                candidates.push(m);
            }
        }
        if candidates.is_empty() {
            candidates = self.state.population.iter().collect();
        }
        let rng = &mut self.state.rng;
        let (pa, pb) = match self.problem.policy.selection {
            Selection::Roulette => roulette_pair(&candidates, rng),
            Selection::Tournament => tournament_pair(&candidates, rng),
        };
        let (ma, mb) = (candidates[pa], candidates[pb]);
        let parents = [ma.id, mb.id];
        let mut a = ma.individual.clone();
        let mut b = mb.individual.clone();
        let node_num = self.problem.range.node_num;
        let len = rng.random_range(4..node_num / 2);
        let start = rng.random_range(0..=node_num - len);
        for k in start..start + len {
            std::mem::swap(&mut a.slots[k], &mut b.slots[k]);
        }
        let origin = Origin::Crossover { parents };
        let (fallback_a, fallback_b) = (ma.individual.clone(), mb.individual.clone());
        if self.problem.repair(&mut a, rng).is_err() {
            a = fallback_a;
        }
        if self.problem.repair(&mut b, rng).is_err() {
            b = fallback_b;
        }
        ((a, origin.clone()), (b, origin))
    }

    /// Checks a hand-given gene list against the space, `node_num` and the budget.
    pub fn hand_individual(&self, genes: &GeneList) -> Result<Individual, String> {
        let problem = &self.problem;
        problem
            .space
            .validate_genes(genes)
            .map_err(|e| e.to_string())?;
        let individual = Individual::from_genes(genes, &problem.table, problem.range.node_num)
            .map_err(|e| e.to_string())?;
        if individual.active() < problem.range.min_active {
            return Err(format!(
                "{} blocks are fewer than min_active = {}",
                individual.active(),
                problem.range.min_active
            ));
        }
        let params = problem.params(&individual);
        let r = &problem.range;
        if params < r.min_params || params > r.max_params {
            return Err(format!(
                "{params} params are outside the budget {}..{}",
                r.min_params, r.max_params
            ));
        }
        Ok(individual)
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

    /// Runs the whole search with an evaluator, one member at a time.
    pub fn run<E: Evaluator>(&mut self, evaluator: &mut E) -> Vec<GenerationSummary> {
        let mut summaries = Vec::new();
        while !self.state.finished {
            while let Some(index) = self.next_pending(&[]) {
                let member = self.state.population[index].clone();
                let status = match evaluator.evaluate(&self.problem, &member) {
                    Ok(eval) => Status::Evaluated(eval),
                    Err(reason) => Status::Failed { reason },
                };
                self.record(member.id, status);
            }
            summaries.push(self.advance());
        }
        summaries
    }
}

/// Roulette without replacement: weights are fitness minus the minimum; when
/// all are equal every candidate is equally likely (the reference divides by zero).
fn roulette_pair<R: Rng>(candidates: &[&Member], rng: &mut R) -> (usize, usize) {
    if candidates.len() < 2 {
        return (0, 0);
    }
    let fits: Vec<f64> = candidates
        .iter()
        .map(|m| m.fitness().unwrap_or(0.0))
        .collect();
    let min = fits.iter().cloned().fold(f64::INFINITY, f64::min);
    let weights: Vec<f64> = fits.iter().map(|f| f - min).collect();
    let first = spin(&weights, None, rng);
    let second = spin(&weights, Some(first), rng);
    (first, second)
}

fn spin<R: Rng>(weights: &[f64], exclude: Option<usize>, rng: &mut R) -> usize {
    let allowed = |i: usize| Some(i) != exclude;
    let total: f64 = weights
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .map(|(_, w)| w)
        .sum();
    if total <= 0.0 {
        let open: Vec<usize> = (0..weights.len()).filter(|&i| allowed(i)).collect();
        return open[rng.random_range(0..open.len())];
    }
    let mut target = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.iter().enumerate().filter(|(i, _)| allowed(*i)) {
        last = i;
        if target < *w {
            return i;
        }
        target -= w;
    }
    last
}

/// Each parent is the fitter of two random candidates (copies, not references).
fn tournament_pair<R: Rng>(candidates: &[&Member], rng: &mut R) -> (usize, usize) {
    let mut pick = || {
        let a = rng.random_range(0..candidates.len());
        let b = rng.random_range(0..candidates.len());
        let fa = candidates[a].fitness().unwrap_or(f64::NEG_INFINITY);
        let fb = candidates[b].fitness().unwrap_or(f64::NEG_INFINITY);
        if fb > fa {
            b
        } else {
            a
        }
    };
    (pick(), pick())
}
