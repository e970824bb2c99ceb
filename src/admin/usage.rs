//! Usage figures for vendors: the query of `GET /licenses/{id}/usage` and
//! `GET /organizations/{id}/usage`, what `le_admin_usage` (migrations/0008_usage.sql) answers,
//! and the JSON sent back.
//!
//! A range is whole UTC hours: `from` is taken down to its hour and `to` up to the next, so
//! every hour of the answer is a full hour and days are made of them. As everywhere in the
//! API, a request the document allows is not refused for a rule JSON Schema cannot say: a
//! range longer than [`MAX_USAGE_HOURS`] is cut to its last hours, and a `to` not after `from`
//! is an empty range (no hours, nothing counted).

use crate::admin::input::timestamp;
use crate::api::query::Query;
use crate::api::ApiError;
use crate::time::rfc3339_from_millis;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day, in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The longest range one request may ask for: 93 days of hours.
pub const MAX_USAGE_HOURS: i64 = 93 * 24;
/// The range when none is given: the 7 days up to the end of the current hour.
pub const DEFAULT_USAGE_HOURS: i64 = 7 * 24;

/// The query parameters the usage routes take.
pub const USAGE_PARAMETERS: &[&str] = &["from", "to"];

/// A range of whole hours, `[from, to)`, epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRange {
    /// The first hour's start.
    pub from: i64,
    /// The end of the last hour.
    pub to: i64,
}

impl UsageRange {
    /// The hours in the range.
    pub fn hours(&self) -> i64 {
        (self.to - self.from) / HOUR_MS
    }
}

fn floor_hour(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

fn ceil_hour(ms: i64) -> i64 {
    let floor = floor_hour(ms);
    if floor == ms {
        ms
    } else {
        floor + HOUR_MS
    }
}

fn instant(q: &Query, field: &'static str) -> Result<Option<i64>, ApiError> {
    q.get(field)
        .map(|text| timestamp(&Value::String(text.to_owned()), field))
        .transpose()
}

/// The range a usage query asks for (`from`, `to`: RFC 3339 date-times written with a year in
/// [`crate::admin::TIMESTAMP_YEARS`]), at `now`: `to` defaults to the end of the current hour
/// and `from` to [`DEFAULT_USAGE_HOURS`] before `to`. A range longer than
/// [`MAX_USAGE_HOURS`] keeps its last hours; a `to` not after `from` gives an empty range.
pub fn parse_usage_range(q: &Query, now: i64) -> Result<UsageRange, ApiError> {
    let to = instant(q, "to")?.map_or(ceil_hour(now + 1), ceil_hour);
    let from = instant(q, "from")?.map_or(to - DEFAULT_USAGE_HOURS * HOUR_MS, floor_hour);
    let from = from.max(to - MAX_USAGE_HOURS * HOUR_MS);
    Ok(UsageRange {
        from,
        to: to.max(from),
    })
}

/// One hour of `le_admin_usage`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct UsageHour {
    /// The hour's start, epoch ms.
    pub start: i64,
    /// The most sessions holding a seat at once during the hour.
    pub peak_seats: u32,
}

/// What `le_admin_usage` answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UsageRow {
    /// Licenses counted (1 for a license).
    pub licenses: u32,
    /// The seats of the active licenses.
    pub max_seats: u32,
    /// Sessions holding a seat now.
    pub seats_in_use: u32,
    /// The database's now, epoch ms.
    pub now: i64,
    /// Seat decisions in the range by outcome (`created`, `existing`, `no_seats`, ...).
    pub acquire_outcomes: BTreeMap<String, u64>,
    /// Acquires refused before the seat decision, by reason (`rate_limited`).
    pub refusals: BTreeMap<String, u64>,
    /// Distinct machines among the sessions that held a seat in the range.
    pub unique_machines: u64,
    /// Distinct signed-in users among them.
    pub unique_users: u64,
    /// Every hour of the range.
    pub hours: Vec<UsageHour>,
}

/// The refusal reasons a usage answer always lists, by the API's error code, with the
/// seat-decision outcome or refusal reason each counts.
const REFUSALS: &[(&str, &str)] = &[
    ("no_seats_available", "no_seats"),
    ("rate_limited", "rate_limited"),
    ("license_suspended", "suspended"),
    ("license_revoked", "revoked"),
    ("license_expired", "expired"),
];

/// The daily peaks of `hours`: each UTC day's highest hourly peak, for the days the hours touch.
pub fn daily_peaks(hours: &[UsageHour]) -> Vec<UsageHour> {
    let mut days: Vec<UsageHour> = Vec::new();
    for h in hours {
        let day = h.start - h.start.rem_euclid(DAY_MS);
        match days.last_mut() {
            Some(last) if last.start == day => last.peak_seats = last.peak_seats.max(h.peak_seats),
            _ => days.push(UsageHour {
                start: day,
                peak_seats: h.peak_seats,
            }),
        }
    }
    days
}

/// The usage answer: `scope` is `license` or `organization`, `id` its id.
pub fn usage_json(scope: &str, id: &str, range: UsageRange, row: &UsageRow) -> Value {
    let count = |map: &BTreeMap<String, u64>, key: &str| map.get(key).copied().unwrap_or(0);
    let mut refusals = Map::new();
    for (code, outcome) in REFUSALS {
        let n = count(&row.acquire_outcomes, outcome) + count(&row.refusals, outcome);
        refusals.insert((*code).to_owned(), json!(n));
    }
    let series = |items: &[UsageHour]| -> Vec<Value> {
        items
            .iter()
            .map(|h| json!({"start": rfc3339_from_millis(h.start), "peak_seats": h.peak_seats}))
            .collect()
    };
    let peak = row.hours.iter().map(|h| h.peak_seats).max().unwrap_or(0);
    json!({
        "scope": scope,
        "id": id,
        "from": rfc3339_from_millis(range.from),
        "to": rfc3339_from_millis(range.to),
        "generated_at": rfc3339_from_millis(row.now),
        "licenses": row.licenses,
        "max_seats": row.max_seats,
        "seats_in_use": row.seats_in_use,
        "peak_seats": peak,
        "acquires": count(&row.acquire_outcomes, "created") + count(&row.acquire_outcomes, "existing"),
        "new_sessions": count(&row.acquire_outcomes, "created"),
        "refusals": refusals,
        "unique_machines": row.unique_machines,
        "unique_users": row.unique_users,
        "hours": series(&row.hours),
        "days": series(&daily_peaks(&row.hours)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::query::parse_query;

    const NOW: i64 = 1_764_655_200_000 + 25 * 60_000; // 2025-12-02T06:25:00Z

    fn range(q: &str) -> Result<UsageRange, ApiError> {
        parse_usage_range(&parse_query(q, USAGE_PARAMETERS).unwrap(), NOW)
    }

    #[test]
    fn the_default_range_is_the_week_to_the_end_of_this_hour() {
        let r = range("").unwrap();
        assert_eq!(r.to, floor_hour(NOW) + HOUR_MS);
        assert_eq!(r.hours(), DEFAULT_USAGE_HOURS);
    }

    #[test]
    fn ranges_are_widened_to_whole_hours() {
        let r = range("from=2025-12-01T10:30:00Z&to=2025-12-01T12:00:01Z").unwrap();
        assert_eq!(rfc3339_from_millis(r.from), "2025-12-01T10:00:00.000Z");
        assert_eq!(rfc3339_from_millis(r.to), "2025-12-01T13:00:00.000Z");
        let r = range("from=2025-12-01T10:00:00Z&to=2025-12-01T11:00:00Z").unwrap();
        assert_eq!(r.hours(), 1);
    }

    #[test]
    fn rejects_what_is_no_date_time_of_the_years_the_api_takes() {
        for q in [
            "from=yesterday",
            "to=2025-13-01T00:00:00Z",
            "from=1970-01-01T00:00:00Z",
            "to=9999-01-01T00:00:00Z",
        ] {
            assert!(
                matches!(range(q), Err(ApiError::InvalidField { .. })),
                "{q}"
            );
        }
    }

    #[test]
    fn long_ranges_keep_their_last_hours_and_backward_ones_are_empty() {
        let r = range("from=2025-01-01T00:00:00Z&to=2025-12-01T00:00:00Z").unwrap();
        assert_eq!(r.hours(), MAX_USAGE_HOURS);
        assert_eq!(rfc3339_from_millis(r.to), "2025-12-01T00:00:00.000Z");
        let r = range("from=1971-01-01T00:00:00Z&to=9998-12-31T23:59:59Z").unwrap();
        assert_eq!(r.hours(), MAX_USAGE_HOURS);
        for q in [
            "from=2025-12-01T10:00:00Z&to=2025-12-01T10:00:00Z",
            "from=2025-12-02T10:00:00Z&to=2025-12-01T10:00:00Z",
        ] {
            assert_eq!(range(q).unwrap().hours(), 0, "{q}");
        }
    }

    #[test]
    fn days_take_their_highest_hour() {
        let h = |start: i64, peak_seats| UsageHour { start, peak_seats };
        let day = 20_000 * DAY_MS;
        let hours = [
            h(day - HOUR_MS, 4),
            h(day, 1),
            h(day + HOUR_MS, 3),
            h(day + 2 * HOUR_MS, 2),
        ];
        assert_eq!(daily_peaks(&hours), vec![h(day - DAY_MS, 4), h(day, 3)]);
    }

    #[test]
    fn the_answer_names_every_refusal_reason() {
        let row = UsageRow {
            licenses: 1,
            max_seats: 5,
            seats_in_use: 2,
            now: NOW,
            acquire_outcomes: [("created", 7), ("existing", 2), ("no_seats", 3)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            refusals: [("rate_limited".to_owned(), 4)].into_iter().collect(),
            unique_machines: 6,
            unique_users: 0,
            hours: vec![UsageHour {
                start: floor_hour(NOW),
                peak_seats: 5,
            }],
        };
        let v = usage_json(
            "license",
            "lic_1",
            UsageRange {
                from: floor_hour(NOW),
                to: floor_hour(NOW) + HOUR_MS,
            },
            &row,
        );
        assert_eq!(v["acquires"], 9);
        assert_eq!(v["new_sessions"], 7);
        assert_eq!(v["refusals"]["no_seats_available"], 3);
        assert_eq!(v["refusals"]["rate_limited"], 4);
        assert_eq!(v["refusals"]["license_suspended"], 0);
        assert_eq!(v["peak_seats"], 5);
        assert_eq!(v["days"].as_array().unwrap().len(), 1);
    }
}
