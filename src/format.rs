//! Number, size and time formats shared by the command line and the dashboard.

/// `1h02m`, `4m05s`, `12s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// An integer with thousands separators (`520,595`).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in bytes as `812 MiB` or `3.4 GiB`.
pub fn mib(bytes: u64) -> String {
    let m = bytes as f64 / (1024.0 * 1024.0);
    if m >= 1024.0 {
        format!("{:.1} GiB", m / 1024.0)
    } else {
        format!("{m:.0} MiB")
    }
}

/// A CSV field with RFC 4180 quoting, only where needed.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `1 architecture`, `2 architectures`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Parses a memory size: bytes, or a number with K, M, G or T (binary units,
/// an optional trailing `B`/`iB`).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (number, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{t}' is not a memory size (examples: 512M, 2G, 1073741824)"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!(
            "'{t}' is not a usable memory size (examples: 512M, 2G)"
        ));
    }
    Ok(bytes as u64)
}

/// `psnr` as dB over `bicubic`, signed with two decimals: `+0.45`, `-4.12`.
pub fn signed_db(psnr: f64, bicubic: f64) -> String {
    format!("{:+.2}", psnr - bicubic)
}

/// `+0.45 dB vs bicubic`: a fitness against the reference, for text lines.
pub fn vs_bicubic(psnr: f64, bicubic: f64) -> String {
    format!("{} dB vs bicubic", signed_db(psnr, bicubic))
}

/// ` (+0.45 dB vs bicubic)` when the reference is known, else nothing: for
/// lines that read the same without it.
pub fn vs_bicubic_note(psnr: f64, bicubic: Option<f64>) -> String {
    match bicubic {
        Some(b) if psnr.is_finite() => format!(" ({})", vs_bicubic(psnr, b)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_well() {
        assert_eq!(duration(5.2), "5s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(520_595), "520,595");
        assert_eq!(thousands(111_616_819_200), "111,616,819,200");
        assert_eq!(plural(1, "cache hit"), "1 cache hit");
        assert_eq!(plural(3, "cache hit"), "3 cache hits");
    }

    #[test]
    fn signs_and_rounding() {
        assert_eq!(signed_db(29.6, 29.15), "+0.45");
        assert_eq!(signed_db(25.0, 29.13), "-4.13");
        assert_eq!(vs_bicubic(30.0, 29.0), "+1.00 dB vs bicubic");
        assert_eq!(vs_bicubic_note(30.0, None), "");
        assert_eq!(vs_bicubic_note(f64::NAN, Some(29.0)), "");
        assert_eq!(vs_bicubic_note(28.5, Some(29.0)), " (-0.50 dB vs bicubic)");
    }
}
