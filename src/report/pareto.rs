//! The Pareto front of the search: the networks no other network beats on
//! both cost (fewer Multi-Adds) and quality (higher PSNR).

/// The non-dominated points of `(cost, quality)` pairs, by increasing cost:
/// each has strictly higher quality than every cheaper-or-equal point.
/// Of points with the same cost only the best can be on the front; exact
/// duplicates appear once. Non-finite values are ignored.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(c, q)| c.is_finite() && q.is_finite())
        .collect();
    // Cheapest first; at equal cost the best first, so it shadows the others.
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if front.last().is_none_or(|best| p.1 > best.1) {
            front.push(p);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_keeps_only_points_no_cheaper_point_beats() {
        let points = [
            (3.0, 30.0), // on the front
            (1.0, 28.0), // cheapest: on the front
            (2.0, 27.0), // dominated by (1, 28)
            (2.0, 29.0), // on the front; shadows (2, 27)
            (4.0, 29.5), // dominated by (3, 30)
            (5.0, 31.0), // on the front
            (5.0, 31.0), // duplicate
            (0.5, f64::NAN),
        ];
        assert_eq!(
            pareto_front(&points),
            vec![(1.0, 28.0), (2.0, 29.0), (3.0, 30.0), (5.0, 31.0)]
        );
        assert!(pareto_front(&[]).is_empty());
        // Equal quality at a higher cost is dominated.
        assert_eq!(pareto_front(&[(1.0, 5.0), (2.0, 5.0)]), vec![(1.0, 5.0)]);
    }
}
