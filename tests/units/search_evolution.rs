//! The evolution of spec §3 with a cheap stand-in evaluator.

use std::collections::HashMap;

use esr_ea::search::{
    Evaluation, GenerationSummary, Member, Origin, Policy, Problem, Range, Search, SearchError,
    SearchState, Selection, Status, Strategy,
};
use esr_ea::space::SearchSpace;
use proptest::prelude::*;

/// A stand-in trainer: turns a member into a fitness without training.
trait Evaluator {
    /// The fitness of `member`'s network.
    fn evaluate(&mut self, problem: &Problem, member: &Member) -> Result<Evaluation, String>;
}

/// The whole search, one member at a time, through the API the engine
/// drives (`next_pending`, `record`, `advance`) but without its threads.
trait RunAll {
    fn run<E: Evaluator>(&mut self, evaluator: &mut E) -> Vec<GenerationSummary>;
}

impl RunAll for Search {
    fn run<E: Evaluator>(&mut self, evaluator: &mut E) -> Vec<GenerationSummary> {
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

/// Fitness from the architecture alone, so a repeated architecture gets the same value.
struct FakeTrainer {
    trained: HashMap<String, usize>,
}

impl FakeTrainer {
    fn new() -> Self {
        FakeTrainer {
            trained: HashMap::new(),
        }
    }
}

impl Evaluator for FakeTrainer {
    fn evaluate(&mut self, _problem: &Problem, member: &Member) -> Result<Evaluation, String> {
        *self.trained.entry(member.key()).or_default() += 1;
        let depth = member.genes.len() as f64;
        let wide = member.genes.iter().map(|g| g.growth).sum::<usize>() as f64;
        Ok(Evaluation {
            psnr: 30.0 + depth * 0.1 + wide * 0.001,
            ssim: 0.9,
            final_loss: Some(0.05),
            seconds: 0.0,
            latency_ms: None,
            checkpoint_losses: Vec::new(),
        })
    }
}

fn default_problem() -> Problem {
    Problem::new(SearchSpace::default(), Policy::default(), Range::default()).unwrap()
}

fn small_problem(policy: Policy) -> Problem {
    let range = Range {
        node_num: 10,
        min_active: 4,
        max_params: 160_000,
        min_params: 100_000,
    };
    Problem::new(SearchSpace::default(), policy, range).unwrap()
}

#[test]
fn first_generation_meets_the_default_constraints() {
    let problem = default_problem();
    let search = Search::new(problem.clone(), 10).unwrap();
    assert_eq!(search.state.population.len(), 8);
    for m in &search.state.population {
        assert!(problem.is_valid(&m.individual), "{} {}", m.genes, m.params);
        assert!((315_000..=325_000).contains(&m.params));
        assert!(m.genes.len() >= 16);
        // The fast count agrees with the full cost model.
        assert_eq!(
            problem.params(&m.individual),
            problem.arch(&m.individual).cost().params
        );
    }
}

#[test]
fn same_seed_same_genes_other_seed_other_genes() {
    let genes = |seed| {
        let s = Search::new(default_problem(), seed).unwrap();
        s.state
            .population
            .iter()
            .map(|m| m.key())
            .collect::<Vec<_>>()
    };
    assert_eq!(genes(3), genes(3));
    assert_ne!(genes(3), genes(4));
}

#[test]
fn full_search_runs_keeps_elites_sorted_and_never_trains_twice() {
    let problem = small_problem(Policy {
        num_generation: 6,
        ..Policy::default()
    });
    let mut search = Search::new(problem.clone(), 1).unwrap();
    let mut trainer = FakeTrainer::new();
    let summaries = search.run(&mut trainer);
    assert_eq!(summaries.len(), 6);
    assert!(search.state.finished);
    assert!(
        trainer.trained.values().all(|&n| n == 1),
        "an architecture was trained twice"
    );
    let elites = &search.state.elites;
    assert_eq!(elites.len(), 4);
    let mut keys: Vec<String> = elites.iter().map(|m| m.key()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 4, "an architecture holds two elite places");
    assert!(elites.windows(2).all(|w| w[0].fitness() >= w[1].fitness()));
    // Elites are the best of everything evaluated.
    let best_ever = search
        .state
        .history
        .iter()
        .filter_map(Member::fitness)
        .fold(f64::MIN, f64::max);
    assert_eq!(elites[0].fitness().unwrap(), best_ever);
    // Best fitness never gets worse across generations (elitism).
    let bests: Vec<f64> = summaries
        .iter()
        .map(|s| s.elites[0].fitness().unwrap())
        .collect();
    assert!(bests.windows(2).all(|w| w[1] >= w[0]));
    // Every member of every generation met the constraints.
    for m in &search.state.history {
        assert!(problem.is_valid(&m.individual));
    }
    assert_eq!(
        search.state.history.len(),
        6 * 8,
        "one history row per member of each generation"
    );
    let cached = search
        .state
        .history
        .iter()
        .filter(|m| matches!(m.status, Status::Cached(_)))
        .count() as u64;
    assert_eq!(cached, search.state.cache_hits);
}

#[test]
fn tournament_selection_runs() {
    let problem = small_problem(Policy {
        num_generation: 3,
        selection: Selection::Tournament,
        ..Policy::default()
    });
    let mut search = Search::new(problem, 5).unwrap();
    search.run(&mut FakeTrainer::new());
    assert!(search.state.finished);
    assert_eq!(search.state.elites.len(), 4);
}

/// Everyone gets the same fitness: the reference's roulette divides by zero here.
struct ConstantTrainer;

impl Evaluator for ConstantTrainer {
    fn evaluate(&mut self, _: &Problem, _: &Member) -> Result<Evaluation, String> {
        Ok(Evaluation {
            psnr: 25.0,
            ssim: 0.8,
            final_loss: None,
            seconds: 0.0,
            latency_ms: None,
            checkpoint_losses: Vec::new(),
        })
    }
}

#[test]
fn roulette_with_equal_fitness_does_not_break() {
    let mut search = Search::new(small_problem(Policy::default()), 2).unwrap();
    search.run(&mut ConstantTrainer);
    assert!(search.state.finished);
}

/// Fails every network: no elites can be formed, yet the search goes on.
struct FailingTrainer;

impl Evaluator for FailingTrainer {
    fn evaluate(&mut self, _: &Problem, _: &Member) -> Result<Evaluation, String> {
        Err("loss became NaN".into())
    }
}

#[test]
fn failed_members_never_become_elites() {
    let mut search = Search::new(
        small_problem(Policy {
            num_generation: 2,
            ..Policy::default()
        }),
        2,
    )
    .unwrap();
    search.run(&mut FailingTrainer);
    assert!(search.state.elites.is_empty());
    assert!(search
        .state
        .history
        .iter()
        .all(|m| matches!(&m.status, Status::Failed { reason } if reason.contains("NaN"))));
}

#[test]
fn state_round_trips_through_json_and_continues_identically() {
    let problem = small_problem(Policy {
        num_generation: 5,
        ..Policy::default()
    });
    let mut straight = Search::new(problem.clone(), 7).unwrap();
    let mut interrupted = Search::new(problem.clone(), 7).unwrap();
    let mut trainer = FakeTrainer::new();
    // Stop in the middle of generation 2, after three members.
    for _ in 0..2 {
        while let Some(i) = interrupted.next_pending(&[]) {
            let m = interrupted.state.population[i].clone();
            let eval = trainer.evaluate(&problem, &m).unwrap();
            interrupted.record(m.id, Status::Evaluated(eval));
        }
        interrupted.advance();
    }
    for _ in 0..3 {
        if let Some(i) = interrupted.next_pending(&[]) {
            let m = interrupted.state.population[i].clone();
            let eval = trainer.evaluate(&problem, &m).unwrap();
            interrupted.record(m.id, Status::Evaluated(eval));
        }
    }
    let json = serde_json::to_string(&interrupted.state).unwrap();
    let restored: SearchState = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, interrupted.state);
    let mut resumed = Search::resume(problem, restored).unwrap();
    resumed.run(&mut FakeTrainer::new());
    straight.run(&mut FakeTrainer::new());
    assert_eq!(resumed.state, straight.state);
}

#[test]
fn resume_rejects_a_state_from_another_space() {
    let mut search = Search::new(small_problem(Policy::default()), 1).unwrap();
    search.state.population[0].individual.slots.pop();
    let err = Search::resume(small_problem(Policy::default()), search.state).unwrap_err();
    assert!(err.to_string().contains("node_num is 10"), "{err}");
}

fn error_of(policy: Policy, range: Range) -> String {
    match Problem::new(SearchSpace::default(), policy, range) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("constraints should have been rejected"),
    }
}

#[test]
fn impossible_constraints_are_rejected_with_the_reachable_range() {
    let msg = error_of(
        Policy::default(),
        Range {
            max_params: 20_000,
            min_params: 10_000,
            ..Range::default()
        },
    );
    assert!(
        msg.contains("max_params = 20000 is below the smallest network of min_active = 16 blocks"),
        "{msg}"
    );
    assert!(msg.contains("reach"), "{msg}");
    let msg = error_of(
        Policy::default(),
        Range {
            max_params: 90_000_000,
            min_params: 80_000_000,
            ..Range::default()
        },
    );
    assert!(
        msg.contains("min_params = 80000000 is above the largest network of node_num = 20 blocks"),
        "{msg}"
    );
    let msg = error_of(
        Policy::default(),
        Range {
            min_active: 21,
            ..Range::default()
        },
    );
    assert!(
        msg.contains("min_active = 21 is larger than node_num = 20"),
        "{msg}"
    );
    let msg = error_of(
        Policy {
            num_elitism: 9,
            ..Policy::default()
        },
        Range::default(),
    );
    assert!(
        msg.contains("num_elitism = 9 is larger than num_individual = 8"),
        "{msg}"
    );
    let msg = error_of(
        Policy::default(),
        Range {
            node_num: 9,
            min_active: 4,
            ..Range::default()
        },
    );
    assert!(msg.contains("node_num = 9 is below 10"), "{msg}");
    let msg = error_of(
        Policy::default(),
        Range {
            min_params: 400_000,
            max_params: 300_000,
            ..Range::default()
        },
    );
    assert!(
        msg.contains("min_params = 400000 is larger than max_params = 300000"),
        "{msg}"
    );
}

#[test]
fn a_window_repair_cannot_hit_is_reported_not_looped_on() {
    // One exact value inside the reachable range, but a random walk will not land on it.
    let problem = Problem::new(
        SearchSpace::default(),
        Policy::default(),
        Range {
            min_params: 317_777,
            max_params: 317_777,
            ..Range::default()
        },
    );
    match problem.map(|p| Search::new(p, 1)) {
        Ok(Err(SearchError::Unreachable(msg))) => assert!(msg.contains("317777..317777"), "{msg}"),
        Ok(Ok(_)) => {} // an exact hit is astronomically unlikely but not an error
        other => panic!("unexpected: {other:?}"),
    }
}

#[test]
fn reach_is_consistent_with_random_networks() {
    let problem = default_problem();
    let reach = problem.reach();
    assert_eq!(reach.len(), 5, "depths 16..=20");
    let search = Search::new(problem.clone(), 11).unwrap();
    for m in &search.state.population {
        let r = reach.iter().find(|r| r.depth == m.genes.len()).unwrap();
        assert!(r.min <= m.params && m.params <= r.max);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn repaired_individuals_meet_constraints(seed in any::<u64>()) {
        let problem = small_problem(Policy::default());
        let search = Search::new(problem.clone(), seed).unwrap();
        for m in &search.state.population {
            prop_assert!(problem.is_valid(&m.individual));
        }
    }

    #[test]
    fn evolution_keeps_node_num_and_alphabet(seed in any::<u64>()) {
        let problem = small_problem(Policy { num_generation: 3, ..Policy::default() });
        let mut search = Search::new(problem.clone(), seed).unwrap();
        search.run(&mut FakeTrainer::new());
        for m in &search.state.history {
            prop_assert_eq!(m.individual.slots.len(), 10);
            prop_assert!(m.individual.slots.iter().all(|s| s.choice < problem.table.len()));
            prop_assert!(problem.is_valid(&m.individual));
        }
    }
}

#[test]
fn hand_made_members_are_validated_marked_and_selected() {
    let problem = small_problem(Policy {
        num_generation: 2,
        ..Policy::default()
    });
    let mut search = Search::new(problem.clone(), 9).unwrap();
    // A gene outside the configured lists, too few blocks, a budget violation.
    let bad =
        esr_ea::space::GeneList::parse_args(&["S_4_16_64 S_4_16_16 S_4_16_16 S_4_16_16"]).unwrap();
    assert!(search
        .inject(&bad)
        .unwrap_err()
        .contains("not in growth_rate"));
    let short = esr_ea::space::GeneList::parse_args(&["S_4_16_16"]).unwrap();
    assert!(search.inject(&short).unwrap_err().contains("min_active"));
    let big =
        esr_ea::space::GeneList::parse_args(&["S_8_32_32 S_8_32_32 S_8_32_32 S_8_32_32 S_8_32_32"])
            .unwrap();
    assert!(search
        .inject(&big)
        .unwrap_err()
        .contains("outside the budget"));
    // A valid one: reuse a generated member's genes with one more block.
    let good = search.state.population[0].genes.clone();
    let id = search.inject(&good).unwrap();
    assert_eq!(search.state.population.len(), 9);
    let injected = search.state.population.last().unwrap();
    assert_eq!(injected.id, id);
    assert!(injected.origin.is_hand_made());
    // Random hand mutation changes a queued member and marks it.
    let target = search.state.population[1].id;
    let before = search.state.population[1].genes.clone();
    search.hand_mutate(target, None).unwrap();
    let after = &search.state.population[1];
    assert_ne!(after.genes, before);
    assert!(after.origin.is_hand_made());
    assert!(problem.is_valid(&after.individual));
    search.run(&mut FakeTrainer::new());
    assert!(search.state.history.iter().any(|m| m.origin.is_hand_made()));
    // Done members cannot be changed.
    let done = search.state.history[0].id;
    assert!(search.hand_mutate(done, None).is_err());
}

/// `strategy: random` (the baseline): every generation is a fresh draw
/// inside the same budget, from the same seeded generator (same seed, same
/// genes), with the same elites bookkeeping and cache; at the paper's size too.
#[test]
fn random_search_draws_every_generation_fresh_inside_the_budget() {
    for problem in [
        small_problem(Policy {
            num_generation: 4,
            strategy: Strategy::Random,
            ..Policy::default()
        }),
        {
            let mut p = default_problem();
            p.policy.num_generation = 2;
            p.policy.strategy = Strategy::Random;
            p
        },
    ] {
        let run = |seed| {
            let mut search = Search::new(problem.clone(), seed).unwrap();
            let mut trainer = FakeTrainer::new();
            let summaries = search.run(&mut trainer);
            (search, summaries, trainer)
        };
        let (search, summaries, trainer) = run(7);
        assert_eq!(summaries.len(), problem.policy.num_generation);
        for m in &search.state.history {
            assert!(problem.is_valid(&m.individual), "{} {}", m.genes, m.params);
            assert!(
                (problem.range.min_params..=problem.range.max_params).contains(&m.params),
                "{}",
                m.params
            );
            assert_eq!(m.origin, Origin::Initial, "#{} was bred", m.id);
        }
        // Never trained twice: a repeated draw is a cache hit.
        assert!(trainer.trained.values().all(|&n| n == 1));
        assert!(!search.state.elites.is_empty());
        let genes = |s: &Search| s.state.history.iter().map(|m| m.key()).collect::<Vec<_>>();
        assert_eq!(genes(&search), genes(&run(7).0));
        assert_ne!(genes(&search), genes(&run(8).0));
    }
}
