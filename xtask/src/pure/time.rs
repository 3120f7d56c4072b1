//! Times as the lifecycle commands read and write them: AWS's UTC timestamps, `--at DATE`,
//! `--older-than DURATION` and `--grace DAYS`. Seconds since the epoch throughout. Pure.

pub const DAY: u64 = 86_400;

/// A duration or a time that is not spelled as the tool reads them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTime {
    #[error("`{0}` is not a duration: use a number of days or hours like `7d` or `12h`")]
    Duration(String),
    #[error(
        "`{0}` is not a UTC date or time: use `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]Z`, like `2026-12-01T10:00Z`"
    )]
    Time(String),
}

/// The command's one clock as every line prints it (the live view's header and rows, the lines
/// without a terminal, the summary): `M:SS` of `seconds` since the command started.
pub fn clock(seconds: u64) -> String {
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// `7d`, `12h` (days or hours; a whole number of them).
pub fn parse_duration(text: &str) -> Result<u64, BadTime> {
    let bad = || BadTime::Duration(text.to_string());
    let (number, unit) = text.trim().split_at(text.trim().len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "d" => Ok(n * DAY),
        "h" => Ok(n * 3600),
        _ => Err(bad()),
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn iso(epoch: u64) -> String {
    let (year, month, day, h, m, s) = civil(epoch);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// `YYYYMMDD-HHMMSS` (UTC): sorts like time and fits in a folder name (run ids).
pub fn stamp(epoch: u64) -> String {
    let (year, month, day, h, m, s) = civil(epoch);
    format!("{year:04}{month:02}{day:02}-{h:02}{m:02}{s:02}")
}

/// The UTC calendar date and time of `epoch` (Howard Hinnant's days-to-civil algorithm).
fn civil(epoch: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = (epoch / DAY) as i64;
    let secs = epoch % DAY;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs / 60 % 60, secs % 60)
}

/// A UTC time as AWS writes it (`2026-11-25T13:27:45.000Z`) or as users type it
/// (`2026-12-01`, `2026-12-01T10:00`, `2026-12-01T10:00:00Z`).
pub fn parse_time(text: &str) -> Result<u64, BadTime> {
    let bad = || BadTime::Time(text.to_string());
    let text = text.trim().trim_end_matches('Z');
    let text = text.split('.').next().unwrap_or_default();
    let (date, clock) = text.split_once(['T', ' ']).unwrap_or((text, "00:00:00"));
    let date: Vec<&str> = date.split('-').collect();
    let clock: Vec<&str> = clock.split(':').collect();
    if date.len() != 3 || !(2..=3).contains(&clock.len()) {
        return Err(bad());
    }
    let number = |s: &str| s.parse::<u32>().map_err(|_| bad());
    let (year, month, day) = (number(date[0])?, number(date[1])?, number(date[2])?);
    let (hour, minute) = (number(clock[0])?, number(clock[1])?);
    let second = clock.get(2).map_or(Ok(0), |s| number(s))?;
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(year), month, day);
    Ok(days as u64 * DAY + u64::from(hour * 3600 + minute * 60 + second))
}

/// `3d 4h` style age, for plans.
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s >= DAY => format!("{}d {}h", s / DAY, s % DAY / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}m", s / 60),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_is_minutes_and_seconds() {
        assert_eq!(super::clock(0), "0:00");
        assert_eq!(super::clock(62), "1:02");
        assert_eq!(super::clock(3725), "62:05");
    }

    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(stamp(0), "19700101-000000");
        assert_eq!(stamp(1_795_573_423), "20261125-022343");
        assert_eq!(stamp(951_782_400), "20000229-000000");
        assert_eq!(iso(1_795_573_423), "2026-11-25T02:23:43Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(7 * DAY));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert!(parse_duration("7")
            .unwrap_err()
            .to_string()
            .contains("`7d` or `12h`"));
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("3w").is_err());
    }

    #[test]
    fn times_round_trip() {
        for epoch in [0, 951_782_400, 1_795_573_423, 1_800_000_000] {
            assert_eq!(parse_time(&iso(epoch)), Ok(epoch), "{}", iso(epoch));
        }
        assert_eq!(iso(1_795_573_423), "2026-11-25T02:23:43Z");
        assert_eq!(
            parse_time("2026-11-25T02:23:43.000Z"),
            Ok(1_795_573_423),
            "as AWS writes it"
        );
        assert_eq!(parse_time("2026-11-25"), Ok(1_795_573_423 - 8623));
        assert_eq!(parse_time("2026-11-25T02:23"), Ok(1_795_573_423 - 43));
        assert!(parse_time("tomorrow")
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM-DD"));
        assert!(parse_time("2026-13-01").is_err());
        assert_eq!(age(3 * DAY + 7200), "3d 2h");
    }
}
