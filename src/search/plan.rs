//! The plan `search --check` prints: what a search will do and whether its
//! constraints are comfortable.

use super::{Problem, SearchError};
use crate::format::thousands;

/// A human summary of a search's shape and constraints; measures the repair
/// cost by drawing `repair_samples` random individuals.
pub fn describe(
    problem: &Problem,
    seed: u64,
    repair_samples: usize,
) -> Result<String, SearchError> {
    let p = &problem.policy;
    let r = &problem.range;
    let s = &problem.space;
    let reach = problem.reach();
    let at_min = reach.first().copied();
    let lowest = reach.iter().map(|x| x.min).min().unwrap_or(0);
    let highest = reach.iter().map(|x| x.max).max().unwrap_or(0);
    let repair = problem.measure_repair(repair_samples, seed)?;
    let pairs = p.num_individual / 4;
    let per_generation = match p.strategy {
        super::Strategy::Evolution => format!(
            "per generation {} + {}",
            crate::format::plural(p.num_individual - 2 * pairs, "mutant"),
            crate::format::plural(pairs, "crossover pair"),
        ),
        super::Strategy::Random => {
            "random search: every generation drawn fresh, no evolution".to_string()
        }
    };
    let mut out = String::new();
    out.push_str(&format!(
        "search: {} generations x {} individuals = {} trainings at most ({} elites; {per_generation}), seed {seed}\n",
        p.num_generation,
        p.num_individual,
        p.num_generation * p.num_individual,
        p.num_elitism,
    ));
    out.push_str(&format!(
        "network: x{} upscaling, G0 {}, biases {}, {}..{} blocks of {} slots\n",
        s.scale,
        s.g0,
        if s.bias { "on" } else { "off" },
        r.min_active,
        r.node_num,
        r.node_num
    ));
    out.push_str(&format!(
        "choice table: {} blocks (kinds {:?}, convs {:?}, growth {:?})\n",
        problem.table.len(),
        s.block_type,
        s.conv_num,
        s.growth_rate
    ));
    out.push_str(&format!(
        "budget: {}..{} exact params\n",
        thousands(r.min_params),
        thousands(r.max_params)
    ));
    if let Some(m) = at_min {
        out.push_str(&format!(
            "reachable: {}..{} params at min_active = {} blocks; {}..{} over {}..{} blocks\n",
            thousands(m.min),
            thousands(m.max),
            m.depth,
            thousands(lowest),
            thousands(highest),
            r.min_active,
            r.node_num
        ));
    }
    out.push_str(&format!(
        "repair: {} random individuals needed {:.1} resampling rounds on average (max {}), {:.2} ms each\n",
        repair.samples, repair.mean_rounds, repair.max_rounds, repair.mean_millis
    ));
    out.push_str(&format!(
        "selection: {:?}, mutation rate {}\n",
        p.selection, p.mutation_rate
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Policy, Range};
    use crate::space::SearchSpace;

    #[test]
    fn describes_the_default_search() {
        let problem =
            Problem::new(SearchSpace::default(), Policy::default(), Range::default()).unwrap();
        let text = describe(&problem, 1, 20).unwrap();
        assert!(text.contains("20 generations x 8 individuals"), "{text}");
        assert!(text.contains("choice table: 90 blocks"), "{text}");
        assert!(text.contains("budget: 315,000..325,000"), "{text}");
        assert!(text.contains("at min_active = 16 blocks"), "{text}");
        assert!(text.contains("4 mutants + 2 crossover pairs"), "{text}");
    }

    #[test]
    fn one_crossover_pair_is_singular() {
        let policy = Policy {
            num_individual: 4,
            num_elitism: 2,
            ..Policy::default()
        };
        let problem = Problem::new(SearchSpace::default(), policy, Range::default()).unwrap();
        let text = describe(&problem, 1, 5).unwrap();
        assert!(text.contains("2 mutants + 1 crossover pair)"), "{text}");
    }
}
