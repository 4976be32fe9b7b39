//! Dates and months as offices write them in their ledgers: 2024-03-05,
//! 2024/3/5, 2024.3.5, 2024年3月5日, 20240305, with or without a time after
//! it, and Excel serial dates (45356 = 2024-03-05).

use sifa_proto::Period;
use sifa_proto::period::days_from_civil;

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl Day {
    pub fn new(year: i64, month: i64, day: i64) -> Option<Day> {
        let p = Period::new(u16::try_from(year).ok()?, u8::try_from(month).ok()?)?;
        (day >= 1 && day <= p.days_in_month() as i64).then_some(Day {
            year: p.year(),
            month: p.month(),
            day: day as u8,
        })
    }

    pub fn period(self) -> Period {
        Period::new(self.year, self.month).expect("checked on construction")
    }

    /// The Excel serial number of this day (1900 date system).
    pub fn excel_serial(self) -> i64 {
        days_from_civil(self.year as i64, self.month as i64, self.day as i64) - days_from_civil(1899, 12, 30)
    }

    /// The day of an Excel serial number (1900 date system; the fraction is the time of day).
    pub fn from_excel_serial(serial: f64) -> Option<Day> {
        if !serial.is_finite() || !(1.0..=2_958_465.0).contains(&serial) {
            return None;
        }
        let days = serial.floor() as i64 + days_from_civil(1899, 12, 30);
        let (y, m, d) = sifa_proto::period::civil_from_days(days);
        Day::new(y, m, d)
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The numbers in a date-like text, and whether anything else was there.
fn numeric_parts(s: &str) -> Option<Vec<i64>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if matches!(c, '-' | '/' | '.' | '年' | '月' | '日' | '号') {
            if cur.is_empty() {
                return None;
            }
            parts.push(cur.parse().ok()?);
            cur.clear();
        } else {
            return None;
        }
    }
    if !cur.is_empty() {
        parts.push(cur.parse().ok()?);
    }
    Some(parts)
}

/// Parses a day written as an office writes it. Whole numbers between 1 and
/// 2958465 that are not 8-digit dates are Excel serial dates.
pub fn parse_day(text: &str) -> Option<Day> {
    let s = text.trim();
    // Drop a time of day: "2024-03-05 14:30", "2024/3/5 9:00:00".
    let s = s.split_whitespace().next().unwrap_or("");
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().ok()?;
        if s.len() == 8 {
            return Day::new(n / 10000, n / 100 % 100, n % 100);
        }
        return Day::from_excel_serial(n as f64);
    }
    if let Ok(f) = s.parse::<f64>()
        && s.contains('.')
        && s.split('.').count() == 2
        && s.split('.').next().is_some_and(|i| i.len() >= 5)
    {
        return Day::from_excel_serial(f);
    }
    match numeric_parts(s)?.as_slice() {
        [y, m, d] if *y >= 1000 => Day::new(*y, *m, *d),
        _ => None,
    }
}

/// Parses a month as written in a totals sheet: 2024-03, 2024-3, 2024/03,
/// 2024.3, 2024年3月, 202403, or any day of the month.
pub fn parse_month(text: &str) -> Option<Period> {
    let s = text.trim();
    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = s.parse().ok()?;
        return Period::new((n / 100) as u16, (n % 100) as u8);
    }
    if let Some(d) = parse_day(s) {
        return Some(d.period());
    }
    match numeric_parts(s)?.as_slice() {
        [y, m] if *y >= 1000 => Period::new(u16::try_from(*y).ok()?, u8::try_from(*m).ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        parse_day(s).map(|d| d.to_string()).unwrap_or_else(|| "none".into())
    }

    #[test]
    fn days_as_offices_write_them() {
        for s in
            ["2024-03-05", "2024/3/5", "2024.3.5", "2024年3月5日", "2024年03月05号", "20240305", " 2024-3-5 14:30 "]
        {
            assert_eq!(d(s), "2024-03-05", "{s}");
        }
        assert_eq!(d("45356"), "2024-03-05");
        assert_eq!(d("45356.5"), "2024-03-05");
        assert_eq!(Day::new(2024, 3, 5).unwrap().excel_serial(), 45356);
        for bad in ["2024-02-30", "2024-13-01", "3/5/2024", "昨天", "2024-03", "", "2024--03-05", "1899-12-31"] {
            assert_eq!(d(bad), "none", "{bad}");
        }
        assert_eq!(d("2024-02-29"), "2024-02-29");
        assert_eq!(d("2023-02-29"), "none");
    }

    #[test]
    fn months_as_offices_write_them() {
        for s in ["2024-03", "2024-3", "2024/03", "2024.3", "2024年3月", "202403", "2024-03-31", "2024年3月1日"] {
            assert_eq!(parse_month(s).map(|p| p.to_string()).as_deref(), Some("2024-03"), "{s}");
        }
        for bad in ["2024-13", "三月", "24-03", ""] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }
}
