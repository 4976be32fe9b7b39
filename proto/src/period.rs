//! The reporting period: one calendar month, written "YYYY-MM".

use std::fmt;
use std::str::FromStr;

/// One calendar month. Ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: u16,
    month: u8,
}

/// Why a period string was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {input:?} is not a month written YYYY-MM between 2000-01 and 2099-12 (e.g. \"2024-03\")")]
pub struct PeriodError {
    pub input: String,
}

impl Period {
    pub const MIN_YEAR: u16 = 2000;
    pub const MAX_YEAR: u16 = 2099;

    /// A period, if `year` is in 2000..=2099 and `month` in 1..=12.
    pub fn new(year: u16, month: u8) -> Option<Period> {
        ((Self::MIN_YEAR..=Self::MAX_YEAR).contains(&year) && (1..=12).contains(&month))
            .then_some(Period { year, month })
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn next(self) -> Period {
        if self.month == 12 {
            Period { year: self.year + 1, month: 1 }
        } else {
            Period { year: self.year, month: self.month + 1 }
        }
    }

    pub fn prev(self) -> Period {
        if self.month == 1 {
            Period { year: self.year - 1, month: 12 }
        } else {
            Period { year: self.year, month: self.month - 1 }
        }
    }

    /// The month that contains `unix_ms` (UTC+8, China Standard Time, where the
    /// offices keep their books).
    pub fn containing_unix_ms(unix_ms: i64) -> Period {
        let (y, m, _) = civil_from_unix_ms(unix_ms);
        Period::new(y.clamp(Self::MIN_YEAR as i64, Self::MAX_YEAR as i64) as u16, m as u8).expect("clamped")
    }

    /// The current month, China Standard Time.
    pub fn current() -> Period {
        Period::containing_unix_ms(now_unix_ms())
    }

    /// Midnight (China Standard Time) at the start of `day` of the month after
    /// this one, in Unix milliseconds: the deadline "due by the Nth of the next
    /// month" ends at the start of day N+1, so pass `deadline_day + 1`.
    pub fn next_month_day_start_ms(self, day: u8) -> i64 {
        let n = self.next();
        let days = days_from_civil(n.year as i64, n.month as i64, day as i64);
        days * 86_400_000 - CST_OFFSET_MS
    }

    /// The first and the last day of the month, as "YYYY-MM-DD".
    pub fn days_in_month(self) -> u8 {
        match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0 => 29,
            _ => 28,
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Period, PeriodError> {
        let err = || PeriodError { input: s.to_string() };
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()) {
            return Err(err());
        }
        let year: u16 = s[..4].parse().map_err(|_| err())?;
        let month: u8 = s[5..].parse().map_err(|_| err())?;
        Period::new(year, month).ok_or_else(err)
    }
}

/// China Standard Time is UTC+8 all year.
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// "2024-03-05 14:30": a Unix time in milliseconds as China Standard Time, as status pages show it.
pub fn format_cst(unix_ms: i64) -> String {
    let (y, m, d) = civil_from_unix_ms(unix_ms);
    let secs_of_day = (unix_ms + CST_OFFSET_MS).rem_euclid(86_400_000) / 1000;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", secs_of_day / 3600, secs_of_day / 60 % 60)
}

/// (year, month, day) in China Standard Time of a Unix timestamp in ms.
pub fn civil_from_unix_ms(unix_ms: i64) -> (i64, i64, i64) {
    civil_from_days((unix_ms + CST_OFFSET_MS).div_euclid(86_400_000))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: Period = "2024-03".parse().unwrap();
        assert_eq!((p.year(), p.month()), (2024, 3));
        assert_eq!(p.to_string(), "2024-03");
        assert_eq!(p.next().to_string(), "2024-04");
        assert_eq!("2024-12".parse::<Period>().unwrap().next().to_string(), "2025-01");
        assert_eq!("2024-01".parse::<Period>().unwrap().prev().to_string(), "2023-12");
    }

    #[test]
    fn rejects_malformed() {
        for bad in
            ["2024-3", "2024-13", "2024-00", "24-03", "2024/03", "1999-12", "2100-01", "", "2024-03-01", "２０２４-03"]
        {
            let e = bad.parse::<Period>().unwrap_err();
            assert!(e.to_string().contains("YYYY-MM"), "{bad}: {e}");
        }
    }

    #[test]
    fn calendar_round_trips() {
        for days in [-1000, 0, 1, 59, 365, 10_957, 19_782, 20_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn month_boundaries_are_china_standard_time() {
        // 2024-03-31T16:00:00Z is 2024-04-01 00:00 in Beijing.
        let ms = days_from_civil(2024, 3, 31) * 86_400_000 + 16 * 3_600_000;
        assert_eq!(Period::containing_unix_ms(ms).to_string(), "2024-04");
        assert_eq!(Period::containing_unix_ms(ms - 1).to_string(), "2024-03");
        // Due by the 5th of April: the deadline is the start of April 6th, Beijing time.
        let p: Period = "2024-03".parse().unwrap();
        assert_eq!(p.next_month_day_start_ms(6), ms + 5 * 86_400_000);
        assert_eq!("2024-02".parse::<Period>().unwrap().days_in_month(), 29);
        assert_eq!("2023-02".parse::<Period>().unwrap().days_in_month(), 28);
    }
}
