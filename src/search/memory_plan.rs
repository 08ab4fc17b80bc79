//! What the search's largest networks need in memory, against what the
//! machine has: the part of the plan `search --check` and the start of a run
//! print, so a configuration that cannot train or validate is refused
//! before anything trains.

use super::{Problem, SearchError};
use crate::format::mib;
use crate::model::memory::training_step_bytes;
use crate::model::tiled::{bytes_per_pixel, TilePlan};
use crate::space::Arch;

/// Random members drawn to find the space's largest networks.
pub const SAMPLES: usize = 1000;

/// What the memory needs are checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryInputs {
    /// Training batch size.
    pub batch: usize,
    /// LR crop side of a training patch.
    pub crop: usize,
    /// Members trained at once on this machine (workers sharing its memory).
    pub workers: usize,
    /// LR size (height, width) of the largest validation image, when known.
    pub validation_lr: Option<(usize, usize)>,
    /// The inference memory budget validation tiles within, bytes.
    pub budget: u64,
    /// Memory available to training now (host or GPU), bytes, when known.
    pub available: Option<u64>,
    /// Where that memory is, for the messages ("this machine", "cuda:0").
    pub place: String,
}

/// The memory part of the plan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryPlan {
    /// Lines to print.
    pub lines: Vec<String>,
    /// What would fail, one line each.
    pub problems: Vec<String>,
}

/// The largest training step and validation of `samples` random members
/// of `problem` (drawn with `seed`, repaired into the budget as the search
/// draws them), against `inputs`.
pub fn memory_plan(
    problem: &Problem,
    seed: u64,
    samples: usize,
    inputs: &MemoryInputs,
) -> Result<MemoryPlan, SearchError> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x6d65_6d6f_7279);
    let mut archs: Vec<Arch> = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        archs.push(problem.arch(&problem.random_individual(&mut rng)?));
    }
    let mut plan = MemoryPlan::default();
    let step = |a: &Arch| training_step_bytes(a, inputs.batch, inputs.crop);
    let widest_training = archs.iter().max_by_key(|a| step(a)).expect("one sample");
    let need = step(widest_training);
    let total = need * inputs.workers.max(1) as u64;
    let workers = if inputs.workers > 1 {
        format!(", {} for {} workers", mib(total), inputs.workers)
    } else {
        String::new()
    };
    plan.lines.push(format!(
        "memory: training step (batch {} x {}x{} LR) of the largest of {} drawn networks ({} blocks): about {}{workers}; available on {}: {}",
        inputs.batch,
        inputs.crop,
        inputs.crop,
        archs.len(),
        widest_training.genes.len(),
        mib(need),
        inputs.place,
        inputs.available.map_or("unknown".into(), mib),
    ));
    if let Some(have) = inputs.available {
        if total > have {
            plan.problems.push(format!(
                "a training step of the largest networks needs about {} ({} x {} workers) but {} has {} available: lower nas.dataset.train.batch_size or crop, or run fewer workers (--devices)",
                mib(total),
                mib(need),
                inputs.workers.max(1),
                inputs.place,
                mib(have)
            ));
        }
    }
    if let Some((h, w)) = inputs.validation_lr {
        let whole = |a: &Arch| (h * w) as u64 * bytes_per_pixel(a) as u64;
        let widest = archs.iter().max_by_key(|a| whole(a)).expect("one sample");
        let how = match TilePlan::for_image(widest, inputs.budget, h, w) {
            Ok(tiles) if tiles.core >= h.max(w) => "one pass".to_string(),
            Ok(tiles) => format!("tiles of {} px", tiles.core),
            Err(_) => "does not fit".to_string(),
        };
        plan.lines.push(format!(
            "memory: validation of the largest image ({w}x{h} LR) by the widest network: {} in one pass, budget {} ({how})",
            mib(whole(widest)),
            mib(inputs.budget),
        ));
        for a in &archs {
            if let Err(e) = TilePlan::for_image(a, inputs.budget, h, w) {
                plan.problems.push(format!(
                    "validation of {}: {e} (validation tiles within a quarter of the memory available, at most 16 GiB)",
                    a.genes
                ));
                break;
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Policy, Range};
    use crate::space::SearchSpace;

    fn paper_problem() -> Problem {
        let space = SearchSpace::default();
        let range = Range {
            node_num: 20,
            min_active: 16,
            max_params: 325_000,
            min_params: 315_000,
        };
        Problem::new(space, Policy::default(), range).unwrap()
    }

    fn inputs(available: Option<u64>) -> MemoryInputs {
        MemoryInputs {
            batch: 16,
            crop: 64,
            workers: 1,
            validation_lr: Some((678, 1020)),
            budget: 4 << 30,
            available,
            place: "this machine".into(),
        }
    }

    #[test]
    fn the_papers_search_fits_a_24_gib_machine() {
        let plan = memory_plan(&paper_problem(), 0, 200, &inputs(Some(20 << 30))).unwrap();
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(plan.lines.len(), 2, "{:?}", plan.lines);
        assert!(
            plan.lines[0].contains("batch 16 x 64x64"),
            "{}",
            plan.lines[0]
        );
        assert!(plan.lines[1].contains("one pass"), "{}", plan.lines[1]);
    }

    #[test]
    fn too_little_memory_is_a_problem_naming_the_fix() {
        let plan = memory_plan(&paper_problem(), 0, 50, &inputs(Some(256 << 20))).unwrap();
        assert_eq!(plan.problems.len(), 1, "{:?}", plan.problems);
        assert!(
            plan.problems[0].contains("batch_size"),
            "{}",
            plan.problems[0]
        );
    }

    #[test]
    fn a_validation_budget_below_the_smallest_tile_is_a_problem() {
        let mut small = inputs(None);
        small.budget = 1 << 20;
        let plan = memory_plan(&paper_problem(), 0, 20, &small).unwrap();
        assert!(plan.lines[1].contains("does not fit"), "{}", plan.lines[1]);
        assert_eq!(plan.problems.len(), 1, "{:?}", plan.problems);
        assert!(
            plan.problems[0].contains("too small"),
            "{}",
            plan.problems[0]
        );
    }
}
