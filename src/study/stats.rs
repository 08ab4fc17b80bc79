//! The statistics of a fidelity study: rank correlations with ties handled
//! as scipy does (Spearman on average ranks, Kendall's tau-b), top-k overlap,
//! and standard deviations. Written here because each is a few lines and no
//! well-kept crate offers tau-b with ties.

/// Ranks 1..n, ties given the average of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson's correlation; `None` with fewer than two points or when either
/// side has no spread (the correlation is undefined, not zero).
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let mx = mean(x)?;
    let my = mean(y)?;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

/// Spearman's rank correlation: Pearson's on average ranks (ties allowed).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Kendall's tau-b: (concordant − discordant) / sqrt((n0 − n1)(n0 − n2)),
/// where n1 and n2 count the pairs tied in x and in y.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let (mut concordant, mut discordant, mut tied_x, mut tied_y) = (0i64, 0i64, 0i64, 0i64);
    let n = x.len();
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i].total_cmp(&x[j]) as i64;
            let dy = y[i].total_cmp(&y[j]) as i64;
            match (dx, dy) {
                (0, 0) => {
                    tied_x += 1;
                    tied_y += 1;
                }
                (0, _) => tied_x += 1,
                (_, 0) => tied_y += 1,
                _ if dx == dy => concordant += 1,
                _ => discordant += 1,
            }
        }
    }
    let pairs = (n * (n - 1) / 2) as i64;
    let denominator = (((pairs - tied_x) * (pairs - tied_y)) as f64).sqrt();
    if denominator == 0.0 {
        return None;
    }
    Some((concordant - discordant) as f64 / denominator)
}

/// How many of the `k` highest of `x` are also among the `k` highest of `y`
/// (ties broken by position, first wins).
pub fn top_overlap(x: &[f64], y: &[f64], k: usize) -> usize {
    top_in_top(x, k, y, k)
}

/// How many of the `ky` highest of `y` are among the `kx` highest of `x`
/// (ties broken by position, first wins).
pub fn top_in_top(x: &[f64], kx: usize, y: &[f64], ky: usize) -> usize {
    let tx = top_indices(x, kx);
    top_indices(y, ky).iter().filter(|i| tx.contains(i)).count()
}

/// Positions of the `k` highest values, highest first (ties: first wins).
fn top_indices(v: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// The mean; `None` for no values.
pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The sample standard deviation (n − 1); `None` with fewer than two values.
pub fn sample_sd(v: &[f64]) -> Option<f64> {
    if v.len() < 2 {
        return None;
    }
    let m = mean(v)?;
    Some((v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// The pooled within-group standard deviation: sqrt of the sum of squared
/// deviations from each group's mean over the pooled degrees of freedom.
/// Groups of one value add nothing; `None` when no group has two.
pub fn pooled_sd(groups: &[Vec<f64>]) -> Option<f64> {
    let (mut squares, mut freedom) = (0.0, 0usize);
    for g in groups.iter().filter(|g| g.len() >= 2) {
        let m = mean(g)?;
        squares += g.iter().map(|a| (a - m) * (a - m)).sum::<f64>();
        freedom += g.len() - 1;
    }
    (freedom > 0).then(|| (squares / freedom as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("defined");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0, 20.0]),
            vec![1.5, 3.5, 1.5, 5.0, 3.5]
        );
    }

    #[test]
    fn spearman_matches_scipy_with_ties() {
        // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233
        close(
            spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]),
            0.820_782_681_668_123_3,
        );
        close(spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]), -1.0);
    }

    #[test]
    fn kendall_tau_b_matches_scipy_with_ties() {
        // scipy.stats.kendalltau([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) = -0.47140452079103173
        close(
            kendall_tau_b(&[12.0, 2.0, 1.0, 12.0, 2.0], &[1.0, 4.0, 7.0, 1.0, 0.0]),
            -0.471_404_520_791_031_73,
        );
        // No ties: (C - D) / pairs; here one discordant pair of three.
        close(kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]), 1.0 / 3.0);
    }

    #[test]
    fn undefined_correlations_are_none() {
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(kendall_tau_b(&[1.0], &[2.0]), None);
        assert_eq!(pearson(&[1.0, 2.0], &[1.0]), None);
    }

    #[test]
    fn overlap_and_spreads() {
        assert_eq!(
            top_overlap(&[5.0, 4.0, 3.0, 2.0], &[5.0, 1.0, 3.0, 4.0], 2),
            1
        );
        assert_eq!(top_overlap(&[1.0, 2.0], &[1.0, 2.0], 3), 2);
        close(sample_sd(&[1.0, 2.0, 3.0, 4.0]), (5.0f64 / 3.0).sqrt());
        // Groups {1, 3} and {10, 12, 14}: squares 2 + 8 over 1 + 2 freedoms.
        close(
            pooled_sd(&[vec![1.0, 3.0], vec![10.0, 12.0, 14.0], vec![7.0]]),
            (10.0f64 / 3.0).sqrt(),
        );
        assert_eq!(pooled_sd(&[vec![1.0]]), None);
    }
}
