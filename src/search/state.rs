//! The search state and the generation loop (spec §3).
//!
//! The state is a plain serialisable value: the engine evaluates pending
//! members in any order (on any number of workers), records outcomes, and
//! calls [`Search::advance`] when a generation is complete. Restored from
//! JSON, it continues bit-identically because the RNG state is part of it.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::individual::Individual;
use super::problem::Problem;
use super::{Evaluation, Halving, Member, Origin, Rung, SearchError, Status, Stop, StopRule};
use crate::space::SearchSpace;

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
    /// Measured latencies (median ms per frame) by architecture, rejected
    /// ones included, so no architecture is measured twice, across resumes too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub latency: BTreeMap<String, f64>,
    /// Next member id.
    pub next_id: u64,
    /// True once the last generation is complete.
    pub finished: bool,
    /// The evolution's random state.
    pub rng: ChaCha8Rng,
    /// One summary per completed generation.
    #[serde(default)]
    pub summaries: Vec<GenerationSummary>,
    /// Outside jobs (Slurm job ids) of members in flight, by member id: kept
    /// until the member's result is recorded, so a restarted coordinator
    /// adopts a job instead of submitting the member again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jobs: BTreeMap<u64, String>,
    /// Mean PSNR of plain bicubic upscaling on the fitness's validation
    /// images: the line every fitness is read against. Computed once when the
    /// run starts (again on resuming a run saved without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bicubic_psnr: Option<f64>,
    /// Architectures the median stopping rule stopped, by architecture: a
    /// later copy is stopped the same way without training (as the cache
    /// does for results), so the rule never pays twice for one network.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stopped: BTreeMap<String, Stop>,
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
                latency: BTreeMap::new(),
                next_id: 0,
                finished: false,
                rng,
                summaries: Vec::new(),
                jobs: BTreeMap::new(),
                bicubic_psnr: None,
                stopped: BTreeMap::new(),
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

    pub(super) fn new_member(&mut self, individual: Individual, origin: Origin) -> Member {
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
    pub(super) fn resolve_from_cache(&mut self, index: usize) {
        let member = &self.state.population[index];
        if member.status != Status::Pending {
            return;
        }
        let status = match self.state.cache.get(&member.key()) {
            Some(eval) => Status::Cached(eval.clone()),
            None => match self.state.stopped.get(&member.key()) {
                Some(stop) => Status::Stopped(stop.clone()),
                None => return,
            },
        };
        self.state.population[index].status = status;
        self.state.cache_hits += 1;
        let done = self.state.population[index].clone();
        self.state.history.push(done);
    }

    /// Index of the next member to train, skipping architectures already
    /// being trained (`busy` keys), so duplicates wait for the cache.
    /// Members promoted by successive halving come first (their generation
    /// waits for them), and an architecture that waits at a halving
    /// checkpoint is busy too.
    pub fn next_pending(&self, busy: &[String]) -> Option<usize> {
        let population = &self.state.population;
        let held: Vec<String> = population
            .iter()
            .filter(|m| matches!(m.status, Status::Waiting(_) | Status::Promoted(_)))
            .map(Member::key)
            .collect();
        population
            .iter()
            .position(|m| matches!(m.status, Status::Promoted(_)) && !busy.contains(&m.key()))
            .or_else(|| {
                population.iter().position(|m| {
                    m.status == Status::Pending
                        && !busy.contains(&m.key())
                        && !held.contains(&m.key())
                })
            })
    }

    /// Records that a member reached a halving checkpoint and waits there
    /// (not a result: nothing enters the history). False when the member is
    /// not training any more (killed meanwhile).
    pub fn record_waiting(&mut self, id: u64, rung: Rung) -> bool {
        let Some(index) = self.member_index(id) else {
            return false;
        };
        let member = &mut self.state.population[index];
        if !matches!(member.status, Status::Pending | Status::Promoted(_)) {
            return false;
        }
        member.status = Status::Waiting(rung);
        true
    }

    /// True when members wait at a halving checkpoint and no other member
    /// of the generation can train: the moment to cut.
    pub fn halving_due(&self) -> bool {
        self.state
            .population
            .iter()
            .any(|m| matches!(m.status, Status::Waiting(_)))
            && self.next_pending(&[]).is_none()
    }

    /// Successive halving's cut: at each checkpoint where members wait, the
    /// `halving.kept` of them with the lowest mean loss (ties by id) are
    /// promoted to continue; the others stop there (a result: history and the
    /// stopped cache, as the median rule's stops). `steps` is a whole
    /// training's length. Returns the ids promoted and the members stopped
    /// with their stops.
    pub fn halve(&mut self, halving: &Halving, steps: usize) -> (Vec<u64>, Vec<(u64, Stop)>) {
        let mut rungs: Vec<usize> = self
            .state
            .population
            .iter()
            .filter_map(|m| match &m.status {
                Status::Waiting(r) => Some(r.rung),
                _ => None,
            })
            .collect();
        rungs.sort_unstable();
        rungs.dedup();
        let (mut promoted, mut stopped) = (Vec::new(), Vec::new());
        for at in rungs {
            let mut waiting: Vec<(u64, f64)> = self
                .state
                .population
                .iter()
                .filter_map(|m| match &m.status {
                    Status::Waiting(r) if r.rung == at => Some((m.id, r.loss)),
                    _ => None,
                })
                .collect();
            super::halving::rank(&mut waiting);
            let kept = halving.kept(waiting.len());
            let cut = waiting[kept - 1].1;
            for (place, (id, _)) in waiting.iter().enumerate() {
                let index = self.member_index(*id).expect("a member of this generation");
                let Status::Waiting(rung) = self.state.population[index].status.clone() else {
                    unreachable!("filtered above")
                };
                if place < kept {
                    self.state.population[index].status = Status::Promoted(rung);
                    promoted.push(*id);
                } else {
                    let stop = Stop {
                        step: rung.step,
                        steps,
                        loss: rung.loss,
                        median: cut,
                        checkpoint_losses: rung.checkpoint_losses,
                        seconds: rung.seconds,
                        rule: StopRule::Halving {
                            kept,
                            of: waiting.len(),
                        },
                    };
                    self.record(*id, Status::Stopped(stop.clone()));
                    stopped.push((*id, stop));
                }
            }
        }
        (promoted, stopped)
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
            if let Some(ms) = eval.latency_ms {
                self.state.latency.insert(key.clone(), ms);
            }
            self.state.cache.insert(key, eval.clone());
        }
        if let Status::Stopped(stop) = &status {
            let key = self.state.population[index].key();
            self.state.stopped.insert(key, stop.clone());
        }
        self.state.population[index].status = status;
        let done = self.state.population[index].clone();
        self.state.history.push(done);
        for i in 0..self.state.population.len() {
            self.resolve_from_cache(i);
        }
        true
    }

    /// Records a member that was not trained because its measured latency
    /// (kept in the latency cache) is over the limit: it fails with `reason`.
    pub fn record_rejected(&mut self, id: u64, reason: String, latency_ms: f64) -> bool {
        if let Some(index) = self.member_index(id) {
            let key = self.state.population[index].key();
            self.state.latency.insert(key, latency_ms);
        }
        self.record(id, Status::Failed { reason })
    }

    /// The cached latency (ms per frame) of a member's architecture.
    pub fn known_latency(&self, member: &Member) -> Option<f64> {
        self.state.latency.get(&member.key()).copied()
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
}
