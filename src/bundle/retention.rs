//! Which bundles to keep: restic's `forget` rules (`--keep-last`,
//! `--keep-daily`, `--keep-weekly`, `--keep-monthly`, `--keep-within`)
//! applied to bundle names, for the local bundle directory (`backup`,
//! `prune`) and for push targets alike. Only complete bundles
//! (`parse_bundle_name`) are ever candidates: `.incomplete-*` directories
//! another process is writing are not even looked at here.
//!
//! Semantics (as restic): bundles are taken newest first; `last N` keeps
//! the N newest; `daily N` keeps the newest bundle of each of the N most
//! recent days that have a bundle (weekly: ISO weeks, monthly: months);
//! `within D` keeps every bundle made less than D before the newest one.
//! A bundle is kept if any rule keeps it. Days are UTC days, as the names.
//! On top of that the caller names the newest bundle that verifies, which
//! is always kept.

use super::parse_bundle_name;
use std::time::Duration;

/// The rules; all unset keeps everything (the caller refuses that for `prune`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub within: Option<Duration>,
}

impl Policy {
    /// `--keep N` as it always was: `--keep-last N`.
    pub fn last(n: u32) -> Policy {
        Policy {
            last: Some(n),
            ..Policy::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// "last 3, daily 7, within 2days" for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (word, n) in [
            ("last", self.last),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
        ] {
            if let Some(n) = n {
                parts.push(format!("{word} {n}"));
            }
        }
        if let Some(d) = self.within {
            parts.push(format!("within {}", humantime::format_duration(d)));
        }
        parts.join(", ")
    }
}

/// The verdict on one bundle: kept (and every reason) or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub name: String,
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Seconds since the epoch of a bundle name (`2026-11-26T06-10-00Z[-N]`).
pub fn bundle_time(name: &str) -> Option<i64> {
    let (stamp, _) = parse_bundle_name(name)?;
    let num = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Decides for every complete bundle name in `names` (any order; other
/// names are ignored). `protect` is the newest bundle that verifies (or
/// the one just written): kept whatever the rules say. Returns the
/// decisions newest first.
pub fn decide(names: &[String], policy: &Policy, protect: Option<&str>) -> Vec<Decision> {
    let mut bundles: Vec<(&String, (String, u32), i64)> = names
        .iter()
        .filter_map(|n| Some((n, parse_bundle_name(n)?, bundle_time(n)?)))
        .collect();
    bundles.sort_by(|a, b| b.1.cmp(&a.1));
    let newest = bundles.first().map(|b| b.2);
    let mut last = policy.last.unwrap_or(0);
    let mut buckets: [(Option<u32>, Option<String>, &str); 3] = [
        (policy.daily, None, "daily"),
        (policy.weekly, None, "weekly"),
        (policy.monthly, None, "monthly"),
    ];
    let mut out = Vec::new();
    for (name, _, t) in bundles {
        let mut reasons = Vec::new();
        if protect == Some(name.as_str()) {
            reasons.push("newest bundle that verifies".to_string());
        }
        if last > 0 {
            last -= 1;
            reasons.push(format!("last {}", policy.last.unwrap_or(0)));
        }
        let days = t.div_euclid(86_400);
        for (i, (left, seen, word)) in buckets.iter_mut().enumerate() {
            let Some(n) = left else { continue };
            let key = match i {
                0 => day_key(days),
                1 => week_key(days),
                _ => month_key(days),
            };
            if *n > 0 && seen.as_deref() != Some(key.as_str()) {
                *n -= 1;
                reasons.push(format!("{word} ({key})"));
                *seen = Some(key);
            }
        }
        if let (Some(d), Some(newest)) = (policy.within, newest) {
            if newest - t < d.as_secs() as i64 {
                reasons.push(format!(
                    "within {} of the newest",
                    humantime::format_duration(d)
                ));
            }
        }
        out.push(Decision {
            name: name.clone(),
            reasons,
        });
    }
    out
}

pub use super::store::{prune_dir, PruneError, Pruned};

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn day_key(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn month_key(days: i64) -> String {
    let (y, m, _) = civil_from_days(days);
    format!("{y:04}-{m:02}")
}

/// ISO 8601 week: weeks start on Monday; week 1 holds the year's first Thursday.
fn week_key(days: i64) -> String {
    // 1970-01-01 was a Thursday: weekday 0 = Monday.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    format!("{year:04}-W{week:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter(|d| d.keep())
            .map(|d| d.name.as_str())
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn times_and_calendar_keys() {
        assert_eq!(bundle_time("1970-01-02T00-00-01Z"), Some(86_401));
        assert_eq!(bundle_time("2026-11-26T06-10-00Z-1"), Some(1_795_673_400));
        assert_eq!(bundle_time(".incomplete-2026-11-26T06-10-00Z"), None);
        let day = |s: &str| bundle_time(s).map(|t| t / 86_400).unwrap();
        assert_eq!(week_key(day("2026-01-01T00-00-00Z")), "2026-W01");
        assert_eq!(week_key(day("2027-01-03T00-00-00Z")), "2026-W53");
        assert_eq!(week_key(day("2024-12-30T00-00-00Z")), "2025-W01");
        assert_eq!(month_key(day("2024-02-29T23-59-59Z")), "2024-02");
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day_with_bundles() {
        let all = names(&[
            "2026-11-26T18-00-00Z",
            "2026-11-26T06-00-00Z",
            "2026-11-25T06-00-00Z",
            "2026-11-23T06-00-00Z",
            "2026-11-20T06-00-00Z",
        ]);
        let p = Policy {
            daily: Some(3),
            ..Policy::default()
        };
        let d = decide(&all, &p, None);
        assert_eq!(
            kept(&d),
            [
                "2026-11-26T18-00-00Z",
                "2026-11-25T06-00-00Z",
                "2026-11-23T06-00-00Z"
            ]
        );
        assert_eq!(d[0].reasons, ["daily (2026-11-26)"]);
    }

    #[test]
    fn rules_combine_and_the_protected_bundle_stays() {
        let all = names(&[
            "2026-11-02T06-00-00Z", // Monday, week 45
            "2026-11-08T06-00-00Z", // Sunday, week 45
            "2026-10-15T06-00-00Z",
            "2026-09-30T06-00-00Z",
            "2026-11-09T06-00-00Z", // Monday, week 46
        ]);
        let p = Policy {
            last: Some(1),
            weekly: Some(2),
            monthly: Some(3),
            ..Policy::default()
        };
        let d = decide(&all, &p, Some("2026-11-02T06-00-00Z"));
        assert_eq!(
            d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            [
                "2026-11-09T06-00-00Z",
                "2026-11-08T06-00-00Z",
                "2026-11-02T06-00-00Z",
                "2026-10-15T06-00-00Z",
                "2026-09-30T06-00-00Z"
            ]
        );
        assert_eq!(
            d[0].reasons,
            ["last 1", "weekly (2026-W46)", "monthly (2026-11)"]
        );
        assert_eq!(d[1].reasons, ["weekly (2026-W45)"]);
        assert_eq!(d[2].reasons, ["newest bundle that verifies"]);
        assert_eq!(d[3].reasons, ["monthly (2026-10)"]);
        assert_eq!(d[4].reasons, ["monthly (2026-09)"]);
    }

    #[test]
    fn within_counts_from_the_newest_bundle_not_the_clock() {
        let all = names(&[
            "2020-01-10T00-00-00Z",
            "2020-01-09T00-00-01Z",
            "2020-01-08T00-00-00Z",
        ]);
        let p = Policy {
            within: Some(Duration::from_secs(2 * 86_400)),
            ..Policy::default()
        };
        assert_eq!(
            kept(&decide(&all, &p, None)),
            ["2020-01-10T00-00-00Z", "2020-01-09T00-00-01Z"]
        );
    }
}
