//! Short, fixed-width number and time formats for narrow table columns.

pub use crate::format::{duration, thousands};

/// A count in at most 6 characters: `950`, `152.3k`, `1.23M`, `35.2G`.
pub fn short(n: u64) -> String {
    let x = n as f64;
    let scaled = |v: f64, unit: &str| {
        if v >= 100.0 {
            format!("{v:.0}{unit}")
        } else if v >= 10.0 {
            format!("{v:.1}{unit}")
        } else {
            format!("{v:.2}{unit}")
        }
    };
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => scaled(x / 1e3, "k"),
        1_000_000..=999_999_999 => scaled(x / 1e6, "M"),
        1_000_000_000..=999_999_999_999 => scaled(x / 1e9, "G"),
        1_000_000_000_000..=999_999_999_999_999 => scaled(x / 1e12, "T"),
        _ => format!("{x:.0e}"),
    }
}

/// A loss value in 6 characters: `0.0312`, `1.2e-5`.
pub fn loss(v: f64) -> String {
    if !v.is_finite() {
        return "nan".into();
    }
    if v != 0.0 && v.abs() < 0.001 {
        format!("{v:.0e}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// Where `params` lies in `min..=max`, in percent (may lie outside 0..=100).
pub fn budget_percent(params: u64, min: u64, max: u64) -> f64 {
    if max <= min {
        return 100.0;
    }
    (params as f64 - min as f64) / (max - min) as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers_fit_six_columns() {
        assert_eq!(short(950), "950");
        assert_eq!(short(152_340), "152k");
        assert_eq!(short(15_234), "15.2k");
        assert_eq!(short(1_234_567), "1.23M");
        assert_eq!(short(35_200_000_000), "35.2G");
        for n in [0, 9_999, 10_000, 99_999, 999_999, 123_456_789_012, u64::MAX] {
            assert!(short(n).len() <= 6, "{n} -> {}", short(n));
        }
    }

    #[test]
    fn durations_and_losses_read_well() {
        assert_eq!(duration(5.2), "5s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(loss(0.03124), "0.0312");
        assert_eq!(loss(0.00001), "1e-5");
        assert!(loss(123.0).len() <= 6);
        assert_eq!(thousands(520_595), "520,595");
        assert_eq!(budget_percent(130, 100, 160), 50.0);
    }
}
