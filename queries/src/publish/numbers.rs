//! How published numbers are written: fixed formats, so the same data always
//! gives the same bytes.

/// A count in the style of a Chinese bulletin: 828000 → "82.8万", 39000 → "3.9万",
/// 2828 → "2828", 10000 → "1万".
pub fn wan(n: f64) -> String {
    if n.abs() >= 10_000.0 {
        let s = format!("{:.1}", n / 10_000.0);
        format!("{}万", s.strip_suffix(".0").unwrap_or(&s))
    } else {
        integer(n)
    }
}

/// A whole number without grouping; a non-integral value with two decimals.
pub fn integer(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 { format!("{}", n as i64) } else { format!("{n:.2}") }
}

/// A whole number with thousands separators (for English text): 828000 → "828,000".
pub fn grouped(n: f64) -> String {
    let s = integer(n);
    let (int, frac) =
        s.split_once('.').map(|(a, b)| (a.to_string(), format!(".{b}"))).unwrap_or((s.clone(), String::new()));
    let (sign, digits) = int.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", &int));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}{frac}")
}

/// A percentage with one decimal: 55.3 → "55.3%"; none → "–".
pub fn pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "–".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulletin_numbers() {
        assert_eq!(wan(828_000.0), "82.8万");
        assert_eq!(wan(39_000.0), "3.9万");
        assert_eq!(wan(10_000.0), "1万");
        assert_eq!(wan(2_828.0), "2828");
        assert_eq!(grouped(1_497_288.0), "1,497,288");
        assert_eq!(grouped(-1234.5), "-1,234.50");
        assert_eq!(pct(Some(55.3)), "55.3%");
        assert_eq!(pct(None), "–");
    }
}
