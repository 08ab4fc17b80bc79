//! The genetic operators (spec §3 steps 2–3): elitism, mutation, crossover
//! and the selection of crossover parents.

use rand::seq::IndexedRandom;
use rand::Rng;

use super::individual::Individual;
use super::{Member, Origin, Search, Selection, Strategy};

impl Search {
    /// Of the elites and this generation's members, keeps the E fittest
    /// distinct architectures (members without fitness never become elites;
    /// a repeated architecture counts once; ties keep the older).
    pub(super) fn update_elites(&mut self) {
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

    /// The next generation's genotypes (spec §3 step 3), or fresh random
    /// ones under [`Strategy::Random`].
    pub(super) fn reproduce(&mut self) -> Vec<(Individual, Origin)> {
        let n = self.problem.policy.num_individual;
        if self.problem.policy.strategy == Strategy::Random {
            return (0..n).map(|i| self.random_child(i)).collect();
        }
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

    /// A fresh draw from the space, as the first generation's; where the
    /// draw cannot be repaired into the budget, the member it replaces.
    fn random_child(&mut self, i: usize) -> (Individual, Origin) {
        match self.problem.random_individual(&mut self.state.rng) {
            Ok(ind) => (ind, Origin::Initial),
            Err(_) => (
                self.state.population[i % self.state.population.len()]
                    .individual
                    .clone(),
                Origin::Initial,
            ),
        }
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
